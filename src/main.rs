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
  policy check FILE
                validate a policy file and warn about allow entries that hand out a
                shell or run code (exit 0: fine, 1: warnings, 64: invalid)
  help          this text

See README.md for every PODTERM_* variable.";

fn main() -> ExitCode {
    let command = std::env::args().nth(1);
    let command = match command.as_deref() {
        None | Some("serve") => Command::Serve,
        Some("dev") => Command::Dev,
        Some("dev-cluster") => Command::DevCluster,
        Some("policy") => return policy_command(std::env::args().skip(2).collect()),
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
            Command::Serve => podterm::serve::main().await,
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

/// `podterm policy check FILE`.
fn policy_command(args: Vec<String>) -> ExitCode {
    let [verb, file] = args.as_slice() else {
        eprintln!("podterm: usage: podterm policy check FILE");
        return ExitCode::from(podterm::config::EXIT_CONFIG);
    };
    if verb != "check" {
        eprintln!("podterm: unknown policy command `{verb}`; usage: podterm policy check FILE");
        return ExitCode::from(podterm::config::EXIT_CONFIG);
    }
    let policy = match podterm::policy::Policy::load(Some(std::path::Path::new(file))) {
        Ok(policy) => policy,
        Err(e) => {
            eprintln!("podterm: {e}");
            return ExitCode::from(podterm::config::EXIT_CONFIG);
        }
    };
    let warnings = podterm::policy::check::warnings(&policy);
    for w in &warnings {
        println!("{file}: warning: {w}");
    }
    if warnings.is_empty() {
        println!("{file}: ok");
        ExitCode::SUCCESS
    } else {
        println!("{file}: {} warning(s)", warnings.len());
        ExitCode::FAILURE
    }
}

enum Command {
    Serve,
    Dev,
    DevCluster,
}
