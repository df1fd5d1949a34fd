//! The `edgelens` binary: command-line parsing and dispatch to the library crates, nothing else.

mod cli;
mod config;
mod registry;

fn main() -> std::process::ExitCode {
    cli::main()
}
