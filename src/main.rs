//! The `starling` command: runs the broker, checks a config file, prints the default config.
//!
//! `main` registers for membarriers before anything else (no thread may exist yet), parses the
//! command line and reads the config; the broker itself is the library's. Errors are printed
//! as `starling: <error>` on standard error with exit status 1; command-line usage errors are
//! clap's, with status 2.

mod startup;

/// Every allocation of the broker goes through mimalloc (see Cargo.toml for why).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use starling::config::{
    self, required_locked_memory_bytes, Config, ConfigError, CpuId, LogConfig, LogFormat,
    Overrides, TuningConfig,
};

/// A thread-per-core MQTT broker.
#[derive(Debug, Parser)]
#[command(name = "starling", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker (what `starling` alone does).
    Run(RunArgs),
    /// Parse and validate a config file: print a summary, or the error and exit 1.
    CheckConfig {
        /// The config file.
        file: PathBuf,
    },
    /// Print the complete default config, every key documented.
    GenerateConfig {
        /// Print the key reference in Markdown (as docs/configuration.md embeds it) instead.
        #[arg(long)]
        markdown: bool,
    },
    /// Hash a password (read from standard input, one line) for hooks.password_file: prints
    /// `USER:HASH`, an argon2id PHC string.
    Passwd {
        /// The user name of the line.
        user: String,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Config file (TOML). Without one, every key has its default.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen on IP:PORT with plain TCP, replacing the file's listeners; repeatable.
    #[arg(long = "listen", value_name = "IP:PORT", value_parser = config::parse_bind_address)]
    listen: Vec<SocketAddr>,
    /// Number of shards, replacing tuning.shards; 0 is one per CPU.
    #[arg(long, value_name = "N")]
    shards: Option<u64>,
}

/// Why `starling` stopped.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// A config that cannot be used; `file` names it when there is one.
    #[error("{}{source}", file.as_ref().map_or_else(String::new, |f| format!("{}: ", f.display())))]
    Config {
        file: Option<PathBuf>,
        source: ConfigError,
    },
    #[error("cannot set up logging: {0}")]
    Logging(String),
    #[error("cannot raise RLIMIT_MEMLOCK: {0}")]
    Rlimit(#[source] io::Error),
    #[error(transparent)]
    Memlock(#[from] startup::MemlockError),
    #[error(transparent)]
    Broker(#[from] starling::broker::BrokerError),
    #[error("passwd: {0}")]
    Passwd(String),
}

fn main() -> ExitCode {
    // First, while this is the only thread: see `startup::register_membarrier`. The outcome is
    // logged once logging is set up.
    let membarrier = startup::register_membarrier();
    let cli = Cli::parse();
    let result = match cli.command {
        None => run(cli.run, membarrier),
        Some(Command::Run(args)) => run(args, membarrier),
        Some(Command::CheckConfig { file }) => check_config(&file),
        Some(Command::GenerateConfig { markdown }) => {
            if markdown {
                print!("{}", config::reference_markdown());
            } else {
                print!("{}", config::default_config_toml());
            }
            Ok(())
        }
        Some(Command::Passwd { user }) => passwd(&user),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("starling: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `starling check-config FILE`.
fn check_config(file: &Path) -> Result<(), CliError> {
    let with_file = |source| CliError::Config {
        file: Some(file.to_owned()),
        source,
    };
    let config = Config::load_file(file, &Overrides::default()).map_err(with_file)?;
    let cpus = config.tuning.shard_cpus().map_err(with_file)?;
    println!("{}: ok", file.display());
    for line in summary(&config, &cpus) {
        println!("  {line}");
    }
    if let Ok((soft, hard)) = startup::memlock_limits() {
        println!("  RLIMIT_MEMLOCK here: soft {soft}, hard {hard}");
    }
    Ok(())
}

/// `starling [run]`: everything up to the broker runtime.
fn run(args: RunArgs, membarrier: io::Result<()>) -> Result<(), CliError> {
    let overrides = Overrides {
        listen: args.listen,
        shards: args.shards,
    };
    let file = args.config;
    let with_file = |source| CliError::Config {
        file: file.clone(),
        source,
    };
    let config = match &file {
        Some(path) => Config::load_file(path, &overrides),
        None => Config::from_toml_str("", &overrides),
    }
    .map_err(with_file)?;
    init_logging(&config.log)?;
    match membarrier {
        Ok(()) => tracing::debug!("registered for private expedited membarriers"),
        Err(error) => tracing::debug!(
            %error,
            "membarrier registration failed; each shard's first park may take a few ms longer"
        ),
    }
    let cpus = config.tuning.shard_cpus().map_err(with_file)?;
    raise_limits(&config.tuning, cpus.len())?;
    for line in summary(&config, &cpus) {
        tracing::info!("{line}");
    }
    run_broker(config)
}

/// Raises the open-file and (unless `tuning.raise_memlock = false`) the locked-memory soft
/// limits to their hard limits, and checks that the shards' rings fit in the latter.
fn raise_limits(tuning: &TuningConfig, shards: usize) -> Result<(), CliError> {
    match startup::raise_nofile_limit() {
        Ok((before, after)) if before != after => {
            tracing::info!(
                before,
                after,
                "raised the open-file soft limit to the hard limit"
            );
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot raise the open-file soft limit"),
    }
    if !tuning.raise_memlock {
        return Ok(());
    }
    let report = startup::raise_memlock_limit().map_err(CliError::Rlimit)?;
    if report.soft_before != report.soft_after {
        tracing::info!(
            before = %report.soft_before,
            after = %report.soft_after,
            "raised the RLIMIT_MEMLOCK soft limit to the hard limit"
        );
    }
    let required = required_locked_memory_bytes(tuning, shards);
    report.ensure(required, startup::has_cap_ipc_lock())?;
    Ok(())
}

/// Runs the broker with a validated config until SIGINT or SIGTERM.
fn run_broker(config: Config) -> Result<(), CliError> {
    starling::broker::run(config)?;
    Ok(())
}

/// Sets up tracing: `RUST_LOG` when set, else `log.level`; lines on standard error.
fn init_logging(log: &LogConfig) -> Result<(), CliError> {
    let (source, directives) = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => ("RUST_LOG", value),
        _ => ("log.level", log.level.clone()),
    };
    let filter = EnvFilter::builder()
        .parse(&directives)
        .map_err(|e| CliError::Logging(format!("{source} = \"{directives}\": {e}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal());
    match log.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| CliError::Logging(e.to_string()))
}

/// A few lines saying what the config will start: listeners, shards and CPUs, locked memory.
fn summary(config: &Config, cpus: &[CpuId]) -> Vec<String> {
    let listeners: Vec<String> = config
        .listeners
        .iter()
        .map(|l| format!("{} ({} {})", l.name, l.transport.as_str(), l.bind))
        .collect();
    let origin = if config.tuning.cpus.is_empty() {
        "from this process's CPU affinity mask"
    } else {
        "from tuning.cpus"
    };
    let required = required_locked_memory_bytes(&config.tuning, cpus.len());
    vec![
        format!("listeners: {}", listeners.join(", ")),
        format!(
            "shards: {} on CPUs {} ({origin})",
            cpus.len(),
            CpuId::list(cpus)
        ),
        format!(
            "locked memory: about {} for the io_uring rings",
            startup::human_bytes(required)
        ),
    ]
}

/// `starling passwd USER`: reads the password from standard input and prints the line for the
/// password file. A user name with ':' could not be read back, so it is refused.
fn passwd(user: &str) -> Result<(), CliError> {
    if user.is_empty() || user.contains(':') || user.contains(char::is_whitespace) {
        return Err(CliError::Passwd(
            "the user name must be non-empty, without ':' or spaces".to_owned(),
        ));
    }
    let mut password = String::new();
    io::stdin()
        .read_line(&mut password)
        .map_err(|error| CliError::Passwd(format!("cannot read the password: {error}")))?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(CliError::Passwd("the password is empty".to_owned()));
    }
    let hash = starling::hooks::builtin::hash_password(password)
        .map_err(|error| CliError::Passwd(error.to_string()))?;
    println!("{user}:{hash}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_is_the_default_command() {
        let cli =
            Cli::try_parse_from(["starling", "--listen", "0.0.0.0:1883", "--shards", "2"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(
            cli.run.listen,
            ["0.0.0.0:1883".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(cli.run.shards, Some(2));
        let cli = Cli::try_parse_from(["starling", "run", "-c", "x.toml"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Run(RunArgs {
                config: Some(_),
                ..
            }))
        ));
    }

    #[test]
    fn run_options_do_not_mix_with_other_commands() {
        assert!(Cli::try_parse_from(["starling", "--shards", "2", "generate-config"]).is_err());
        assert!(Cli::try_parse_from(["starling", "check-config"]).is_err());
    }

    #[test]
    fn listen_addresses_are_checked_by_the_parser() {
        let err = Cli::try_parse_from(["starling", "--listen", "0.0.0.0:0"]).unwrap_err();
        assert!(err.to_string().contains("port 0 is not allowed"), "{err}");
        let err = Cli::try_parse_from(["starling", "--listen", "localhost:1883"]).unwrap_err();
        assert!(
            err.to_string().contains("host names are not resolved"),
            "{err}"
        );
    }

    #[test]
    fn the_summary_names_listeners_shards_and_cpus() {
        let config = Config::default();
        let cpus = vec![CpuId::new(0).unwrap(), CpuId::new(1).unwrap()];
        let lines = summary(&config, &cpus);
        assert_eq!(lines[0], "listeners: default (tcp 127.0.0.1:1883)");
        assert_eq!(
            lines[1],
            "shards: 2 on CPUs 0-1 (from this process's CPU affinity mask)"
        );
        assert_eq!(
            lines[2],
            "locked memory: about 936 KiB for the io_uring rings"
        );
    }

    #[test]
    fn config_errors_name_the_file() {
        let err = CliError::Config {
            file: Some(PathBuf::from("a.toml")),
            source: ConfigError::Invalid {
                key: "tuning.ring_depth".to_owned(),
                message: "must be".to_owned(),
            },
        };
        assert_eq!(err.to_string(), "a.toml: tuning.ring_depth: must be");
    }
}
