//! Command-line interface: argument parsing and dispatch to the library crates.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use edgelens_aggregate::pipeline::{replay_files, PipelineConfig, PipelineStats, ReplayProgress};
use edgelens_aggregate::sink::parquet::ParquetLake;
use edgelens_aggregate::sink::Sinks;
use edgelens_aggregate::sites::HostSites;
use edgelens_schemas::clickhouse::ClickHouseConfig;
use edgelens_aggregate::WindowConfig;
use edgelens_schemas::parse_duration;

#[derive(Parser, Debug)]
#[command(name = "edgelens", version, about = "CDN edge traffic analytics: Logpush events in, traffic share, rates and attacks out")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `edgelens_aggregate=debug`.
    #[arg(long, global = true, env = "EDGELENS_LOG", default_value = "info")]
    log: String,
    /// Log format on stderr: `text` (human-readable) or `json` (one JSON object per line, for log
    /// collectors).
    #[arg(long, global = true, env = "EDGELENS_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Embedded pipeline with live synthetic traffic (incl. attacks), dashboard and API.
    Demo(DemoArgs),
    /// Write synthetic Logpush NDJSON with ground truth.
    Generate(GenerateArgs),
    /// Run files through the embedded pipeline into the Parquet lake; exits when all windows are flushed.
    Replay(ReplayArgs),
    /// Score the incidents detected in a lake against a generator's ground truth: recall,
    /// precision, false alerts per negative kind, detection delay, signature precision/coverage.
    Eval(EvalArgs),
    /// Run a read-only SQL query over the lake.
    Sql(SqlArgs),
    /// Site registry: import sites, entity attributions and tags from CSV or JSON; export them.
    Registry(crate::registry::RegistryArgs),
    /// Serve the query API and dashboard over the lake.
    Query(QueryArgs),
    /// Ingest role: the Logpush HTTP receiver in front of Kafka (or, with `file`, files into Kafka).
    Ingest(IngestArgs),
    /// Aggregator role: a consumer group member turning the events topic into the lake, exactly once.
    Aggregate(AggregateArgs),
    /// Several roles in one process, from one config file (each role reads its own section, as
    /// when it runs alone); Ctrl-C or SIGTERM stops them all, and a role that fails stops the others.
    Run(RunArgs),
    /// Check a config file (and the `EDGELENS__*` environment) without starting anything: every
    /// section must parse, unknown sections and keys are errors. Prints the effective settings.
    CheckConfig(CheckConfigArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Config file (TOML, sections `[ingest]`, `[aggregate]`, `[query]`, `[clickhouse]`);
    /// `EDGELENS__<SECTION>__<KEY>` variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The roles to run.
    #[arg(long, value_delimiter = ',', default_values_t = [Role::Ingest, Role::Aggregate, Role::Query])]
    roles: Vec<Role>,
}

/// A role of `edgelens run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Role {
    Ingest,
    Aggregate,
    Query,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Ingest => "ingest",
            Role::Aggregate => "aggregate",
            Role::Query => "query",
        })
    }
}

#[derive(Args, Debug)]
struct CheckConfigArgs {
    /// Config file (TOML); without one, the defaults overlaid by the environment are checked.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct AggregateArgs {
    /// Config file (TOML, section `[aggregate]`); `EDGELENS__AGGREGATE__<KEY>` variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers (overrides file and environment).
    #[arg(long)]
    brokers: Option<String>,
    /// Lake directory (overrides file and environment).
    #[arg(long, value_parser = dir_arg)]
    data_dir: Option<PathBuf>,
    /// Consumer group (overrides file and environment).
    #[arg(long)]
    group: Option<String>,
    /// Also write to the ClickHouse server at this HTTP URL (overrides `[clickhouse] url`).
    #[arg(long)]
    clickhouse: Option<String>,
}

#[derive(Args, Debug)]
struct IngestArgs {
    #[command(subcommand)]
    cmd: Option<IngestCmd>,
    /// Config file (TOML, section `[ingest]`); `EDGELENS__INGEST__<KEY>` variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers, host:port[,host:port...] (overrides file and environment).
    #[arg(long, global = true)]
    brokers: Option<String>,
    /// Receiver listen address, IP:PORT or HOST:PORT (overrides file and environment).
    #[arg(long, global = true, value_parser = parse_listen)]
    listen: Option<SocketAddr>,
}

#[derive(Subcommand, Debug)]
enum IngestCmd {
    /// Replay NDJSON / NDJSON.gz files into the events topic (rejected lines to the dead-letters topic).
    File {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Address of the dashboard and API, IP:PORT or HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    listen: SocketAddr,
    /// Address of the Postgres wire protocol (psql, Grafana), `off` to disable.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5433", value_parser = parse_pg_listen)]
    pg_listen: PgListen,
    /// Lake directory.
    #[arg(long, default_value = "./edgelens-data", value_parser = dir_arg)]
    data_dir: PathBuf,
    /// Mean synthetic events per second.
    #[arg(long, default_value_t = 3000.0)]
    rps: f64,
    /// Number of synthetic sites.
    #[arg(long, default_value_t = 500)]
    sites: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args, Debug)]
struct GenerateArgs {
    /// baseline | flood | flash-crowd | mixed | demo | eval
    #[arg(long, default_value = "mixed")]
    scenario: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Event-time length, e.g. 10m, 1h.
    #[arg(long, default_value = "10m")]
    duration: String,
    /// Mean baseline events per second over all sites.
    #[arg(long, default_value_t = 2000.0)]
    rps: f64,
    #[arg(long, default_value_t = 1000)]
    sites: usize,
    /// First event second (RFC 3339 or unix seconds); default 2026-11-01T00:00:00Z.
    #[arg(long, default_value = "2026-11-01T00:00:00Z")]
    start: String,
    /// Maximum out-of-order displacement of an event, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    jitter_ms: u32,
    /// Output file; `.gz` (any case) compresses; `-` writes to stdout.
    #[arg(long)]
    out: PathBuf,
    /// Ground-truth JSON file.
    #[arg(long)]
    truth: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct WindowArgs {
    /// How far an event may be behind the newest one without being late.
    #[arg(long, default_value = "5s")]
    allowed_disorder: String,
    /// How far behind the watermark a late event is still counted (as a delta row).
    #[arg(long, default_value = "10m")]
    allowed_lateness: String,
    /// Count redelivered events (same RayID) and resent messages again instead of once.
    #[arg(long)]
    no_dedup: bool,
    /// How far ahead of the wall clock an event may be; later ones are dead letters
    /// (`future_timestamp`), so one bad clock cannot push the watermark past the present. 0: no limit.
    #[arg(long, default_value = "5m")]
    max_future: String,
}

impl WindowArgs {
    fn config(&self) -> Result<WindowConfig> {
        let d = |s: &str, what: &str| parse_duration(s).with_context(|| format!("--{what}: not a duration: {s:?}"));
        Ok(WindowConfig {
            allowed_disorder: d(&self.allowed_disorder, "allowed-disorder")?,
            allowed_lateness: d(&self.allowed_lateness, "allowed-lateness")?,
            dedup_ray_ids: !self.no_dedup,
            max_future: if self.max_future.trim() == "0" { 0 } else { d(&self.max_future, "max-future")? },
        })
    }
}

#[derive(Args, Debug)]
struct ReplayArgs {
    /// NDJSON or NDJSON.gz files, merged by event time into one stream (files of the same hours
    /// side by side, successive ones one after the other; a file given twice is read once).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Lake directory.
    #[arg(long, default_value = "./edgelens-data", value_parser = dir_arg)]
    data_dir: PathBuf,
    #[command(flatten)]
    window: WindowArgs,
    /// Longest accepted line in bytes; longer lines are dead-lettered.
    #[arg(long, default_value_t = edgelens_ingest::reader::DEFAULT_MAX_LINE)]
    max_line_bytes: usize,
    /// Closed rows buffered before a Parquet file is written.
    #[arg(long, default_value_t = 200_000)]
    flush_rows: usize,
    /// What of client IP addresses is stored: keep, truncate (/24, /48) or hash (keyed, needs
    /// --client-ip-key); see docs/operations.md.
    #[arg(long, default_value = "keep")]
    client_ip: String,
    /// Secret key of --client-ip hash.
    #[arg(long, env = "EDGELENS_CLIENT_IP_KEY", default_value = "", hide_env_values = true, hide_default_value = true)]
    client_ip_key: String,
    /// Also write the rollups to the ClickHouse server at this HTTP URL (schema created or
    /// migrated first; database and credentials from `EDGELENS__CLICKHOUSE__*`, default `edgelens`).
    #[arg(long)]
    clickhouse: Option<String>,
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// Ground-truth JSON written by `edgelens generate --truth`.
    #[arg(long)]
    truth: PathBuf,
    /// Lake directory holding the `incidents` table.
    #[arg(long, default_value = "./edgelens-data", value_parser = dir_arg)]
    data_dir: PathBuf,
    /// The generated event files: signatures are then scored against the labelled events.
    #[arg(long = "events", num_args = 1..)]
    events: Vec<PathBuf>,
    /// Write the full JSON report here (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum OutputFormat {
    Table,
    Csv,
    Json,
}

#[derive(Args, Debug)]
struct SqlArgs {
    /// The query.
    sql: String,
    /// Lake directory.
    #[arg(long, default_value = "./edgelens-data", value_parser = dir_arg)]
    data_dir: PathBuf,
    /// Output format (default: table on a terminal, CSV otherwise).
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    /// Query the ClickHouse server at this HTTP URL instead of the lake (database and credentials
    /// from `EDGELENS__CLICKHOUSE__*`, default `edgelens`).
    #[arg(long)]
    clickhouse: Option<String>,
}

#[derive(Args, Debug)]
struct QueryArgs {
    /// Config file (TOML, section `[query]`); `EDGELENS__QUERY__<KEY>` variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// HTTP listen address, IP:PORT or HOST:PORT (overrides file and environment).
    #[arg(long, value_parser = parse_listen)]
    listen: Option<SocketAddr>,
    /// Lake directory (overrides file and environment).
    #[arg(long, value_parser = dir_arg)]
    data_dir: Option<PathBuf>,
    /// Read the ClickHouse server at this HTTP URL instead of the lake (sets `[query] backend =
    /// "clickhouse"` and `[clickhouse] url`).
    #[arg(long)]
    clickhouse: Option<String>,
    /// Postgres wire protocol listen address, `off` to disable (overrides `[query] pg_listen`).
    #[arg(long, value_name = "ADDR", value_parser = parse_pg_listen)]
    pg_listen: Option<PgListen>,
}

/// `--pg-listen`: an address, or `off` (or an empty value) for no Postgres listener.
#[derive(Clone, Copy, Debug)]
struct PgListen(Option<SocketAddr>);

/// A directory given on the command line; an empty one is refused (the lake would land in the
/// working directory unasked).
pub(crate) fn dir_arg(s: &str) -> std::result::Result<PathBuf, String> {
    if s.trim().is_empty() {
        return Err("an empty path: give a directory (\".\" for the working directory)".into());
    }
    Ok(PathBuf::from(s))
}

fn parse_pg_listen(s: &str) -> std::result::Result<PgListen, String> {
    edgelens_query::pgwire::listen_address::parse(s).map(PgListen)
}

/// `--listen`: `IP:PORT`, or `HOST:PORT` resolved (`localhost:8080`).
fn parse_listen(s: &str) -> std::result::Result<SocketAddr, String> {
    edgelens_schemas::net::listen_addr::parse(s)
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_tracing(&cli.log, cli.log_format) {
        eprintln!("edgelens: error: --log (or EDGELENS_LOG) {:?}: {e}", cli.log);
        return ExitCode::FAILURE;
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgelens: error: {}", crate::config::error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr through `filter`; a filter that does not parse is an error, not a silent `info`.
fn init_tracing(filter: &str, format: LogFormat) -> std::result::Result<(), tracing_subscriber::filter::ParseError> {
    let filter = tracing_subscriber::EnvFilter::builder().parse(filter)?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Demo(a) => crate::cli::demo::run(a),
        Cmd::Generate(a) => generate(a),
        Cmd::Replay(a) => replay(a),
        Cmd::Eval(a) => eval(a),
        Cmd::Sql(a) => sql(a),
        Cmd::Registry(a) => crate::registry::run(a),
        Cmd::Query(a) => query(a),
        Cmd::Ingest(a) => ingest(a),
        Cmd::Aggregate(a) => aggregate(a),
        Cmd::CheckConfig(a) => check_config(a),
        Cmd::Run(a) => run_roles(a),
    }
}

fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_owned());
    pb
}

fn eval(a: EvalArgs) -> Result<()> {
    use edgelens_aggregate::detect::eval::{evaluate, latest_incidents, summary, TruthFile};
    // A mistyped path would otherwise score every attack as missed.
    require_lake_dir(&a.data_dir, "the --data-dir that replay wrote")?;
    let truth: TruthFile = serde_json::from_slice(&std::fs::read(&a.truth).with_context(|| format!("reading {}", a.truth.display()))?)
        .with_context(|| format!("{} is not a ground-truth file of `edgelens generate --truth`", a.truth.display()))?;
    let batches = ParquetLake::read_table(&a.data_dir, &edgelens_schemas::tables::INCIDENTS)?;
    let incidents = latest_incidents(&batches).map_err(anyhow::Error::msg)?;
    let report = evaluate(&truth, &incidents, &a.events).map_err(anyhow::Error::msg)?;
    eprint!("{}", summary(&report));
    let json = serde_json::to_string_pretty(&report)?;
    match a.out {
        Some(path) => std::fs::write(&path, json + "\n").with_context(|| format!("writing {}", path.display()))?,
        None => print_out(&json)?,
    }
    Ok(())
}

fn replay(a: ReplayArgs) -> Result<()> {
    if a.files.iter().any(|f| f.as_os_str() == "-") {
        bail!("replay reads files, not standard input ('-'): each file is read twice (to know it by its bytes, then its events); write the data to a file first");
    }
    if a.max_line_bytes == 0 {
        bail!("--max-line-bytes must be at least 1: with 0 every line would be a dead letter");
    }
    let cfg = PipelineConfig {
        windows: a.window.config()?,
        max_line: a.max_line_bytes,
        flush_rows: a.flush_rows.max(1),
        client_ip: edgelens_schemas::privacy::ClientIpPolicy::from_config(&a.client_ip, &a.client_ip_key).map_err(|e| anyhow::anyhow!("--client-ip: {e}"))?,
        sites: edgelens_aggregate::sites::from_lake(&a.data_dir).with_context(|| format!("reading the site registry of {}", a.data_dir.display()))?,
        ..PipelineConfig::default()
    };
    let ch = clickhouse_from_env(a.clickhouse.as_deref())?;
    let patience = Some(Duration::from_millis(ch.connect_timeout_ms));
    let sinks = Sinks::open_within(&a.data_dir, &ch, Arc::new(AtomicBool::new(false)), patience).with_context(|| match ch.enabled() {
        true => format!("opening lake {} and ClickHouse {}", a.data_dir.display(), ch.read_server()),
        false => format!("opening lake {}", a.data_dir.display()),
    })?;
    let started = Instant::now();
    let pb = progress_bar(0, "replay");
    let (stats, sinks) = replay_files(&a.files, cfg, sinks, |p: ReplayProgress| {
        pb.set_length(p.bytes_total);
        pb.set_position(p.bytes_read);
    })?;
    pb.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let mut summary = summary_json(&stats, sinks.lake.files_written(), secs);
    if let Some(st) = sinks.clickhouse_stats() {
        summary["clickhouse_rows"] = serde_json::json!(st.rows);
    }
    print_out(&serde_json::to_string_pretty(&summary)?)?;
    Ok(())
}

fn summary_json(s: &PipelineStats, files: u64, secs: f64) -> serde_json::Value {
    let dead: serde_json::Map<String, serde_json::Value> =
        s.dead_letters.iter().map(|(k, v)| (k.to_owned(), serde_json::Value::from(v))).collect();
    serde_json::json!({
        "lines": s.lines,
        "counted": s.counted,
        "late": s.late,
        "unjudged": s.unjudged,
        "duplicates": s.duplicates,
        "dead_letters": s.dead_letters.total(),
        "dead_letters_by_reason": dead,
        "rows_written": s.rows_written,
        "files_written": files,
        "seconds": (secs * 1000.0).round() / 1000.0,
        "lines_per_second": if secs > 0.0 { (s.lines as f64 / secs).round() } else { 0.0 },
    })
}

fn generate(a: GenerateArgs) -> Result<()> {
    use edgelens_ingest::generate::{GenerateConfig, Scenario, TrafficGenerator};
    use std::io::Write;
    let scenario: Scenario = a.scenario.parse().map_err(|e| anyhow::anyhow!("--scenario: {e}"))?;
    let duration = parse_duration(&a.duration).context("--duration: not a duration")?;
    let start = edgelens_schemas::parse_timestamp_str(&a.start).context("--start: not a time: expected RFC 3339 (2026-11-01T00:00:00Z) or unix seconds, from 2000 to 2100")?;
    let cfg = GenerateConfig {
        scenario,
        seed: a.seed,
        start_ts_secs: start / edgelens_schemas::time::NANOS_PER_SEC,
        duration_secs: (duration / edgelens_schemas::time::NANOS_PER_SEC) as u64,
        rps: a.rps,
        sites: a.sites,
        jitter_ms: a.jitter_ms,
    };
    let total_secs = cfg.duration_secs;
    let mut generator = TrafficGenerator::new(cfg)?;
    // The truth file is created first: a path that cannot be written fails before the events
    // are generated, not after (leaving events without their truth).
    let truth_file = a.truth.as_ref().map(|t| std::fs::File::create(t).with_context(|| format!("creating {}", t.display()))).transpose()?;
    let to_stdout = a.out.as_os_str() == "-";
    let mut out: Box<dyn Write> = if to_stdout {
        Box::new(std::io::BufWriter::with_capacity(1 << 20, std::io::stdout()))
    } else {
        let file = std::fs::File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
        if a.out.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz")) {
            Box::new(flate2_writer(file))
        } else {
            Box::new(std::io::BufWriter::with_capacity(1 << 20, file))
        }
    };
    let pb = if std::io::stderr().is_terminal() { indicatif::ProgressBar::new(total_secs) } else { indicatif::ProgressBar::hidden() };
    let mut buf = Vec::with_capacity(4 << 20);
    let mut events = 0u64;
    let started = Instant::now();
    let written = (|| -> std::io::Result<()> {
        while let Some(n) = generator.next_second(&mut buf) {
            events += n as u64;
            if buf.len() >= 2 << 20 {
                out.write_all(&buf)?;
                buf.clear();
            }
            pb.inc(1);
        }
        out.write_all(&buf)?;
        out.flush()
    })();
    drop(out);
    match written {
        // `generate --out - | head`: the reader has what it wanted.
        Err(e) if to_stdout && e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.with_context(|| format!("writing {}", a.out.display()))?,
    }
    pb.finish_and_clear();
    if let (Some(t), Some(mut f)) = (&a.truth, truth_file) {
        let json = serde_json::to_vec_pretty(&generator.truth())?;
        f.write_all(&json).with_context(|| format!("writing {}", t.display()))?;
    }
    let secs = started.elapsed().as_secs_f64();
    let to = if to_stdout { "stdout".to_owned() } else { a.out.display().to_string() };
    eprintln!("edgelens: wrote {events} events to {to} in {secs:.2} s ({:.0} events/s)", events as f64 / secs.max(1e-9));
    Ok(())
}

fn flate2_writer(file: std::fs::File) -> impl std::io::Write {
    flate2::write::GzEncoder::new(std::io::BufWriter::with_capacity(1 << 20, file), flate2::Compression::fast())
}

/// `[clickhouse]` settings from `EDGELENS__CLICKHOUSE__*` variables (database, user, password…)
/// for the commands without a config file, with `url` from the command line; disabled without one.
pub(crate) fn clickhouse_from_env(url: Option<&str>) -> Result<ClickHouseConfig> {
    let Some(url) = url else { return Ok(ClickHouseConfig::default()) };
    let mut cfg: ClickHouseConfig = crate::config::section(&crate::config::load(None, crate::config::process_env())?, "clickhouse")?;
    cfg.url = url.to_owned();
    cfg.validate().map_err(anyhow::Error::msg)?;
    Ok(cfg)
}

fn sql(a: SqlArgs) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let backend: edgelens_query::Backend = match &a.clickhouse {
            Some(url) => edgelens_query::clickhouse::ClickHouseBackend::new(&clickhouse_from_env(Some(url))?).into(),
            None => {
                // A mistyped path would otherwise answer every query with no rows.
                require_lake_dir(&a.data_dir, "the --data-dir that replay, demo or aggregate wrote")?;
                edgelens_query::lake::Lake::open(&a.data_dir)?.into()
            }
        };
        let result = backend.user_sql(&a.sql).await?;
        let format = a.format.unwrap_or(if std::io::stdout().is_terminal() { OutputFormat::Table } else { OutputFormat::Csv });
        let text = match format {
            OutputFormat::Table => edgelens_query::format::to_table(&result.schema, &result.batches)?,
            OutputFormat::Csv => edgelens_query::format::to_csv(&result.schema, &result.batches)?,
            OutputFormat::Json => edgelens_query::format::to_json(&result.batches)?,
        };
        print_out(&text)
    })
}

/// Write `text` to stdout, with a final newline. A reader that went away (`edgelens ... | head`)
/// is not an error: there is no one left to tell.
pub(crate) fn print_out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_all(text.as_bytes()).and_then(|()| if text.ends_with('\n') { Ok(()) } else { stdout.write_all(b"\n") }).and_then(|()| stdout.flush());
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// A mistyped lake path would answer with nothing: an error naming what it is, and what to give.
pub(crate) fn require_lake_dir(dir: &std::path::Path, give: &str) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let what = if dir.exists() { "it is a file, not a directory" } else { "the directory does not exist" };
    bail!("no lake at {}: {what} (give {give})", dir.display())
}

/// The query role's settings: `[query]` with `[clickhouse]`.
fn query_config(doc: &crate::config::Doc) -> Result<edgelens_query::QueryConfig> {
    let mut cfg: edgelens_query::QueryConfig = crate::config::section(doc, "query")?;
    cfg.validate().map_err(anyhow::Error::msg)?;
    cfg.clickhouse = crate::config::section(doc, "clickhouse")?;
    cfg.clickhouse.validate().map_err(anyhow::Error::msg)?;
    Ok(cfg)
}

/// Run the query service until `shutdown`; registry imports over HTTP go where it reads from.
async fn serve_query(
    cfg: edgelens_query::QueryConfig,
    more_metrics: Option<Arc<dyn edgelens_query::metrics::MoreMetrics>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    match cfg.backend {
        edgelens_query::BackendKind::Lake => tracing::info!(data_dir = %cfg.data_dir.display(), "the query service reads the lake"),
        edgelens_query::BackendKind::ClickHouse => tracing::info!(url = %cfg.clickhouse.url, "the query service reads ClickHouse"),
    }
    let writer = crate::registry::SinkWriter {
        lake: (cfg.backend == edgelens_query::BackendKind::Lake).then(|| cfg.data_dir.clone()),
        clickhouse: (cfg.backend == edgelens_query::BackendKind::ClickHouse).then(|| cfg.clickhouse.clone()),
    };
    edgelens_query::api::serve_with(cfg, Some(std::sync::Arc::new(writer)), more_metrics, shutdown).await?;
    Ok(())
}

/// The aggregator role's settings: `[aggregate]` with `[clickhouse]`.
fn aggregate_config(doc: &crate::config::Doc) -> Result<edgelens_aggregate::AggregateConfig> {
    let mut cfg: edgelens_aggregate::AggregateConfig = crate::config::section(doc, "aggregate")?;
    cfg.clickhouse = crate::config::section(doc, "clickhouse")?;
    Ok(cfg)
}

/// Run an aggregator until `shutdown`.
async fn serve_aggregate(cfg: edgelens_aggregate::AggregateConfig, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<()> {
    let stats = edgelens_aggregate::run(cfg, shutdown).await?;
    tracing::info!(messages = stats.messages, checkpoints = stats.checkpoints, rebalances = stats.rebalances, "aggregator exited");
    Ok(())
}

fn run_roles(a: RunArgs) -> Result<()> {
    let doc = crate::config::load(a.config.as_deref(), crate::config::process_env())?;
    let mut roles = a.roles;
    roles.dedup();
    if roles.is_empty() {
        bail!("--roles names no role");
    }
    // Every role's settings are checked before any starts.
    let ingest: edgelens_ingest::IngestConfig = crate::config::section(&doc, "ingest")?;
    let aggregate = aggregate_config(&doc)?;
    let query = query_config(&doc)?;
    let lake = ingest_lake(&ingest, || Ok(aggregate.data_dir.clone()))?;
    let rt = runtime()?;
    rt.block_on(async move {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let shutdown = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let mut tasks = tokio::task::JoinSet::new();
        for role in &roles {
            let done = shutdown();
            let role = *role;
            match role {
                Role::Ingest => {
                    let cfg = ingest.clone();
                    let sites = registry_of(lake.clone());
                    tasks.spawn(async move { (role, edgelens_ingest::run(cfg, sites, done).await.map_err(anyhow::Error::from)) });
                }
                Role::Aggregate => {
                    let cfg = aggregate.clone();
                    tasks.spawn(async move { (role, serve_aggregate(cfg, done).await) });
                }
                Role::Query => {
                    let cfg = query.clone();
                    tasks.spawn(async move { (role, serve_query(cfg, None, done).await) });
                }
            }
        }
        tracing::info!(roles = ?roles.iter().map(Role::to_string).collect::<Vec<_>>(), "roles started");
        let signal = {
            let stop = stop.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = stop.send(true);
            })
        };
        // The first role to end (an error, or a stop) ends the others.
        let mut result = Ok(());
        while let Some(joined) = tasks.join_next().await {
            let _ = stop.send(true);
            let res = match joined {
                Ok((role, res)) => res.with_context(|| format!("role {role}")),
                Err(e) => Err(anyhow::Error::from(e).context("a role panicked")),
            };
            if result.is_ok() {
                result = res;
            }
        }
        signal.abort();
        result
    })
}

fn query(a: QueryArgs) -> Result<()> {
    let doc = crate::config::load(a.config.as_deref(), crate::config::process_env())?;
    let mut cfg = query_config(&doc)?;
    if let Some(url) = a.clickhouse {
        cfg.clickhouse.url = url;
        cfg.clickhouse.validate().map_err(anyhow::Error::msg)?;
        cfg.backend = edgelens_query::BackendKind::ClickHouse;
    }
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    if let Some(d) = a.data_dir {
        if cfg.backend == edgelens_query::BackendKind::ClickHouse {
            tracing::warn!(data_dir = %d.display(), "--data-dir is not read: the query service reads ClickHouse ([query] backend = \"clickhouse\")");
        }
        cfg.data_dir = d;
    }
    if let Some(PgListen(pg)) = a.pg_listen {
        cfg.pg_listen = pg;
    }
    runtime()?.block_on(serve_query(cfg, None, shutdown_signal()))
}

/// The lake ingest reads the site registry from: `[ingest] data_dir`, or when it is unset the
/// aggregators' lake of the same config (`aggregate_lake`, read only then).
fn ingest_lake(cfg: &edgelens_ingest::IngestConfig, aggregate_lake: impl FnOnce() -> Result<PathBuf>) -> Result<PathBuf> {
    cfg.data_dir.clone().map_or_else(aggregate_lake, Ok)
}

/// The site registry ingest keys lines by: read from the lake at `lake` now, and again every 30 s
/// while the process runs. A lake that is not there is said, as keying then ignores the registry.
fn registry_of(lake: PathBuf) -> HostSites {
    let sites = HostSites::default();
    if !lake.is_dir() {
        tracing::warn!(data_dir = %lake.display(), "no lake at [ingest] data_dir: no site registry, lines without ZoneName are keyed by their host's registrable domain (set data_dir to the aggregators' lake)");
    }
    edgelens_aggregate::sites::watch(lake.clone(), sites.clone(), Arc::new(AtomicBool::new(false)));
    tracing::info!(data_dir = %lake.display(), sites = sites.len(), "site registry read");
    sites
}

fn ingest(a: IngestArgs) -> Result<()> {
    let doc = crate::config::load(a.config.as_deref(), crate::config::process_env())?;
    let mut cfg: edgelens_ingest::IngestConfig = crate::config::section(&doc, "ingest")?;
    let lake = ingest_lake(&cfg, || Ok(crate::config::section::<edgelens_aggregate::AggregateConfig>(&doc, "aggregate")?.data_dir))?;
    if let Some(b) = a.brokers {
        cfg.brokers = b;
    }
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    let rt = runtime()?;
    match a.cmd {
        None => rt.block_on(async move {
            let sites = registry_of(lake);
            edgelens_ingest::run(cfg, sites, shutdown_signal()).await?;
            Ok(())
        }),
        Some(IngestCmd::File { files }) => rt.block_on(async move {
            use edgelens_ingest::file::{ingest_files, FileIngestConfig, FileProgress};
            cfg.validate().map_err(anyhow::Error::msg)?;
            let log = edgelens_ingest::kafka::KafkaLog::new(&edgelens_ingest::kafka_config(&cfg))?;
            let fcfg = FileIngestConfig {
                events_topic: cfg.events_topic.clone(),
                dead_letters_topic: cfg.dead_letters_topic.clone(),
                max_line_bytes: cfg.max_line_bytes,
                start_timeout: Duration::from_millis(cfg.connect_timeout_ms),
                sites: registry_of(lake),
                ..FileIngestConfig::default()
            };
            let started = Instant::now();
            let pb = progress_bar(0, "ingest");
            let stats = ingest_files(&files, &log, &fcfg, |p: FileProgress| {
                pb.set_length(p.bytes_total);
                pb.set_position(p.bytes_read);
            })
            .await
            .with_context(|| format!("ingest file (brokers {})", cfg.brokers))?;
            log.flush(Duration::from_millis(cfg.ack_timeout_ms))?;
            pb.finish_and_clear();
            let secs = started.elapsed().as_secs_f64();
            let mut summary = serde_json::to_value(&stats)?;
            summary["seconds"] = serde_json::json!((secs * 1000.0).round() / 1000.0);
            summary["events_per_second"] = serde_json::json!(if secs > 0.0 { (stats.events as f64 / secs).round() } else { 0.0 });
            print_out(&serde_json::to_string_pretty(&summary)?)?;
            Ok(())
        }),
    }
}

fn check_config(a: CheckConfigArgs) -> Result<()> {
    // Every problem of every section at once, as each role would find it when it starts.
    let (doc, mut problems) = crate::config::load_all(a.config.as_deref(), crate::config::process_env())?;
    let crate::config::Sections { ingest, aggregate, query, clickhouse } = crate::config::sections(&doc, &mut problems);
    // A section's validation names each of its problems on a line of its own.
    let mut lines = |section: &str, e: String| problems.extend(e.lines().map(|l| format!("[{section}]: {l}")));
    if let Some(Err(e)) = ingest.as_ref().map(edgelens_ingest::IngestConfig::validate) {
        lines("ingest", e);
    }
    if let Some(Err(edgelens_aggregate::AggregateError::Config(e))) = aggregate.as_ref().map(edgelens_aggregate::AggregateConfig::validate) {
        lines("aggregate", e);
    }
    if let Some(Err(e)) = clickhouse.as_ref().map(ClickHouseConfig::validate) {
        lines("clickhouse", e);
    }
    if let Some(Err(e)) = query.as_ref().map(edgelens_query::QueryConfig::validate) {
        lines("query", e);
    }
    if let Some(Err(e)) = query.as_ref().map(|q| edgelens_query::auth::Auth::new(q.tokens.clone())) {
        problems.push(e.to_string());
    }
    if let (Some(q), Some(ch)) = (&query, &clickhouse)
        && q.backend == edgelens_query::BackendKind::ClickHouse
        && !ch.enabled()
    {
        problems.push("[query]: backend = \"clickhouse\" needs [clickhouse] url (the server the query service reads)".into());
    }
    let (Some(ingest), Some(aggregate), Some(query), Some(clickhouse), true) = (ingest, aggregate, query, clickhouse, problems.is_empty()) else {
        bail!("{}", crate::config::problem_list(&problems));
    };
    // Every setting of every section, secrets shown only as set or not.
    let mut settings = serde_json::json!({
        "ingest": serde_json::to_value(&ingest)?,
        "aggregate": serde_json::to_value(&aggregate)?,
        "query": serde_json::to_value(&query)?,
        "clickhouse": serde_json::to_value(&clickhouse)?,
    });
    for (section, key) in [("ingest", "secret"), ("aggregate", "client_ip_key"), ("clickhouse", "password")] {
        redact(&mut settings[section][key]);
    }
    settings["query"]["tokens"] = serde_json::json!(query.tokens.len());
    print_out(&serde_json::to_string_pretty(&settings)?)?;
    Ok(())
}

/// A secret as check-config shows it: `"(set)"`, or `""` when it is not.
fn redact(v: &mut serde_json::Value) {
    if v.as_str().is_some_and(|s| !s.is_empty()) {
        *v = serde_json::json!("(set)");
    }
}

fn aggregate(a: AggregateArgs) -> Result<()> {
    let doc = crate::config::load(a.config.as_deref(), crate::config::process_env())?;
    let mut cfg = aggregate_config(&doc)?;
    if let Some(url) = a.clickhouse {
        cfg.clickhouse.url = url;
    }
    if let Some(b) = a.brokers {
        cfg.brokers = b;
    }
    if let Some(d) = a.data_dir {
        cfg.data_dir = d;
    }
    if let Some(g) = a.group {
        cfg.group = g;
    }
    runtime()?.block_on(serve_aggregate(cfg, shutdown_signal()))
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    // The Postgres wire's `Describe` plans a statement on these threads: room for the statements
    // the SQL limits allow (a chain of 256 `UNION`s; tokio's default is 2 MiB).
    Ok(tokio::runtime::Builder::new_multi_thread().thread_stack_size(16 << 20).enable_all().build()?)
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        let signal = tokio::select! {
            _ = ctrl_c => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        tracing::info!(signal, "shutting down");
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
    }
}

mod demo {
    //! `edgelens demo`: live synthetic traffic through the embedded pipeline into the lake, with
    //! the query service and dashboard on top. Ctrl-C closes every window, flushes and exits.

    use super::*;
    use edgelens_aggregate::metrics::{AggregateMetrics, Reported};
    use edgelens_aggregate::partition::TopicKind;
    use edgelens_aggregate::pipeline::{now_nanos, EmbeddedPipeline};
    use edgelens_ingest::generate::{GenerateConfig, Scenario, TrafficGenerator};
    use edgelens_ingest::reader::LineReader;
    use edgelens_schemas::time::NANOS_PER_SEC;

    pub fn run(a: DemoArgs) -> Result<()> {
        if !(a.rps > 0.0) {
            bail!("--rps must be positive");
        }
        // A port in use fails the demo before it says where it serves or starts writing.
        std::net::TcpListener::bind(a.listen).with_context(|| format!("the dashboard's address {} (--listen)", a.listen))?;
        // As `edgelens query`: the default Postgres address in use turns the listener off with a
        // warning; an address asked for fails.
        let pg_listen = match a.pg_listen.0 {
            Some(pg) => match std::net::TcpListener::bind(pg) {
                Ok(_) => Some(pg),
                Err(e) if edgelens_query::pgwire::default_address_taken(pg, &e) => {
                    eprintln!("edgelens demo: Postgres wire protocol off: its default address {pg} is in use (--pg-listen ADDR to choose another)");
                    None
                }
                Err(e) => return Err(e).with_context(|| format!("the Postgres address {pg} (--pg-listen, or off)")),
            },
            None => None,
        };
        std::fs::create_dir_all(&a.data_dir).with_context(|| format!("creating {}", a.data_dir.display()))?;
        // The pipeline's counters, on the query service's `/metrics` (as the aggregator's).
        let metrics = Arc::new(AggregateMetrics::default());
        let mut sinks = Sinks::open(&a.data_dir, &Default::default(), Arc::new(AtomicBool::new(false)))?;
        sinks.set_metrics(Arc::clone(&metrics));
        let window = WindowConfig::default();
        let start_secs = now_nanos() / NANOS_PER_SEC;
        // Lake file names derive from source + line span; the start time keeps a restarted demo
        // from overwriting the files of an earlier run in the same data dir.
        let source = format!("demo-{start_secs}");
        let sites = edgelens_aggregate::sites::from_lake(&a.data_dir).with_context(|| format!("reading the site registry of {}", a.data_dir.display()))?;
        let cfg = PipelineConfig { windows: window, flush_rows: 1, source: source.clone(), sites, ..PipelineConfig::default() };
        let pipeline = EmbeddedPipeline::new(cfg, sinks);
        let generator = TrafficGenerator::new(GenerateConfig {
            scenario: Scenario::Demo,
            seed: a.seed,
            start_ts_secs: start_secs,
            duration_secs: u64::MAX / 4,
            rps: a.rps,
            sites: a.sites,
            jitter_ms: 1500,
        })?;

        let stop = Arc::new(AtomicBool::new(false));
        let stop_gen = Arc::clone(&stop);
        let pipeline_metrics = Arc::clone(&metrics);
        let disorder = window.allowed_disorder;
        // The pipeline stopping on its own (a lake write failed: a full disk) stops the demo, as
        // it stops `aggregate` and `replay`: it must not serve on, its data no longer growing.
        let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<()>();
        let producer = std::thread::Builder::new().name("demo-pipeline".into()).spawn(move || -> Result<PipelineStats> {
            let result = demo_pipeline(&stop_gen, pipeline, generator, &source, disorder, &pipeline_metrics);
            if let Err(e) = &result {
                tracing::error!(error = %format!("{e:#}"), "the demo pipeline stopped; stopping the demo");
            }
            let _ = ended_tx.send(());
            result
        })?;

        println!("edgelens demo: dashboard and API on http://{}  (data in {}; Ctrl-C to stop)", a.listen, a.data_dir.display());
        if let Some(pg) = pg_listen {
            println!("edgelens demo: Postgres wire protocol on {pg}  (PGPASSWORD=any psql -h {} -p {} -U edgelens)", pg.ip(), pg.port());
        }
        let rt = runtime()?;
        let qcfg = edgelens_query::QueryConfig { listen: a.listen, data_dir: a.data_dir.clone(), pg_listen, ..Default::default() };
        // Registry imports over HTTP go into the demo's lake, as with `edgelens query`.
        let stopped = async move {
            tokio::select! {
                () = shutdown_signal() => {}
                _ = ended_rx => {}
            }
        };
        let served = rt.block_on(serve_query(qcfg, Some(Arc::new(PipelineMetrics(metrics))), stopped));
        stop.store(true, Ordering::Relaxed);
        let stats = producer.join().map_err(|_| anyhow::anyhow!("demo pipeline thread panicked"))?.context("the demo pipeline stopped")?;
        eprintln!(
            "edgelens demo: stopped; {} events counted, {} dead letters, {} rows written to {}",
            stats.counted,
            stats.dead_letters.total(),
            stats.rows_written,
            a.data_dir.display()
        );
        served?;
        Ok(())
    }

    /// The aggregator's counters of the demo's pipeline, for the query service's `/metrics`.
    #[derive(Debug)]
    struct PipelineMetrics(Arc<AggregateMetrics>);

    impl edgelens_query::metrics::MoreMetrics for PipelineMetrics {
        fn render(&self) -> String {
            self.0.render()
        }
    }

    /// The demo's pipeline: generated traffic paced to the wall clock until `stop`, its counters
    /// added to `metrics` every second.
    fn demo_pipeline(
        stop: &AtomicBool,
        mut pipeline: EmbeddedPipeline<Sinks>,
        mut generator: TrafficGenerator,
        source: &str,
        disorder: i64,
        metrics: &AggregateMetrics,
    ) -> Result<PipelineStats> {
        let mut reported = Reported::of(&pipeline);
        let t0 = Instant::now();
        let mut buf = Vec::with_capacity(1 << 20);
        let mut second = 0u64;
        let mut line_no = 0u64;
        while !stop.load(Ordering::Relaxed) {
            // Pace event time to the wall clock.
            let due = Duration::from_secs(second + 1);
            let elapsed = t0.elapsed();
            if elapsed < due {
                std::thread::sleep((due - elapsed).min(Duration::from_millis(200)));
                continue;
            }
            buf.clear();
            if generator.next_second(&mut buf).is_none() {
                break;
            }
            second += 1;
            let mut lines = LineReader::new(&buf[..], usize::MAX / 2);
            while let Some(line) = lines.next_line()? {
                pipeline.push_line(line, source, line_no, now_nanos())?;
                line_no += 1;
            }
            pipeline.advance_to(now_nanos() - disorder)?;
            pipeline.flush()?;
            metrics.add_partition_delta(TopicKind::Events, &reported.delta(&pipeline));
        }
        // The demo's traffic stops with it: its incidents end (a restart is other traffic).
        let (stats, _) = pipeline.finish_traffic()?;
        Ok(stats)
    }
}
