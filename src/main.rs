//! The `edgelens` binary: command-line parsing and dispatch to the library crates, nothing else.

mod cli;
mod config;

fn main() -> std::process::ExitCode {
    cli::main()
}
