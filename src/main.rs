//! The `podterm` binary: picks the command, runs it, maps start-up errors to exit codes.

use std::process::ExitCode;

#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
usage: podterm [COMMAND]

commands:
  serve         the gateway (default); configured by PODTERM_* environment variables
  dev           the embedded dev cluster plus the gateway on 127.0.0.1, as a local dev user
  dev-cluster   only the embedded dev cluster (for kubectl, tests and load tests)
  help          this text

See README.md for every PODTERM_* variable.";

fn main() -> ExitCode {
    let command = std::env::args().nth(1);
    let command = match command.as_deref() {
        None | Some("serve") => Command::Serve,
        Some("dev") => Command::Dev,
        Some("dev-cluster") => Command::DevCluster,
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("podterm: unknown command `{other}`\n\n{USAGE}");
            return ExitCode::from(podterm::config::EXIT_CONFIG);
        }
    };
    podterm::telemetry::init_logging();
    // The gateway serves connections on worker threads of its own (server::workers); this
    // thread's runtime only accepts, handles signals and runs the shared work (cluster reads,
    // the audit writer). The dev cluster alone is a multi-thread runtime.
    let mut builder = match command {
        Command::Serve | Command::Dev => tokio::runtime::Builder::new_current_thread(),
        Command::DevCluster => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("podterm: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command {
            Command::Serve => podterm::server::main().await,
            Command::Dev => podterm::dev::main().await,
            Command::DevCluster => podterm::devcluster::main().await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("podterm: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

enum Command {
    Serve,
    Dev,
    DevCluster,
}
