//! The `arcbase` command line. Parsing arguments only; the work is in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use arcbase::config::Limits;
use arcbase::server::{self, ServeOptions};

/// mimalloc rather than glibc's malloc: why, and what it costs in memory, is in Cargo.toml.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "arcbase", version, about = "Schema-first GraphQL CRUD service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with app schemas.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Serve the GraphQL API for a schema.
    Serve {
        /// The app schema (GraphQL SDL), served as the `default` instance. Without it: the
        /// instances of the registry, or the example schema built into the binary when the
        /// registry is empty.
        #[arg(long, env = "ARCBASE_SCHEMA")]
        schema: Option<String>,
        /// Where the data lives: sqlite://PATH (created when missing).
        #[arg(long, env = "ARCBASE_DATABASE_URL", default_value = "sqlite://arcbase.db")]
        database: String,
        /// Address to listen on.
        #[arg(long, env = "ARCBASE_LISTEN", default_value = "127.0.0.1:4000")]
        listen: String,
        /// On SIGTERM / Ctrl-C, seconds to let open requests finish before closing their
        /// connections anyway (a client that never finishes its request cannot hold the
        /// shutdown up).
        #[arg(long, env = "ARCBASE_SHUTDOWN_GRACE", default_value_t = 10)]
        shutdown_grace: u64,
        /// Where hyper storage keeps the bytes of stored objects. Default: next to the SQLite
        /// file (`<file>-storage`); with PostgreSQL `arcbase-storage` (several nodes must
        /// share one directory).
        #[arg(long, env = "ARCBASE_STORAGE_DIR")]
        storage_dir: Option<std::path::PathBuf>,
        /// The hyper server the `@hyper` types follow into, as a connection string
        /// (`http(s)://KEY:SECRET@HOST[:PORT]/APP` or `cloud://...`). Default: the built-in
        /// services.
        #[arg(long, env = "ARCBASE_HYPER")]
        hyper: Option<String>,
    },
    /// The hyper bridge: where each target's sync stands, and sending refused objects again.
    Hyper {
        #[command(subcommand)]
        command: HyperCommand,
        /// Where the data lives.
        #[arg(long, global = true, env = "ARCBASE_DATABASE_URL", default_value = "sqlite://arcbase.db")]
        database: String,
    },
    /// App keys for the hyper services (`http://KEY:SECRET@host/app` in hyper-connect).
    Key {
        #[command(subcommand)]
        command: KeyCommand,
        /// Where the data lives.
        #[arg(long, global = true, env = "ARCBASE_DATABASE_URL", default_value = "sqlite://arcbase.db")]
        database: String,
    },
    /// Publish and list the releases of an app.
    Release {
        #[command(subcommand)]
        command: ReleaseCommand,
        /// Where the data lives.
        #[arg(long, global = true, env = "ARCBASE_DATABASE_URL", default_value = "sqlite://arcbase.db")]
        database: String,
    },
    /// Print every limit: its environment variable, its value (defaults with any
    /// ARCBASE_LIMIT_* applied) and what it bounds.
    Limits,
    /// Create, upgrade and list instances (tenants).
    Instance {
        #[command(subcommand)]
        command: InstanceCommand,
        /// Where the data lives.
        #[arg(long, global = true, env = "ARCBASE_DATABASE_URL", default_value = "sqlite://arcbase.db")]
        database: String,
    },
}

#[derive(Subcommand)]
enum ReleaseCommand {
    /// Publish FILE as release NAME of APP (it may only add to the app's newest release).
    Publish {
        #[arg(long)]
        app: String,
        #[arg(long)]
        name: String,
        file: String,
    },
    /// List the releases of APP.
    List {
        #[arg(long)]
        app: String,
    },
}

#[derive(Subcommand)]
enum InstanceCommand {
    /// Create instance DOMAIN running RELEASE of APP.
    Create {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        app: String,
        #[arg(long)]
        release: String,
        /// Callers without an account may use the API (as PUBLIC).
        #[arg(long)]
        allow_anonymous_requests: bool,
        /// Callers without an account may register (createAccount).
        #[arg(long)]
        allow_anonymous_registrations: bool,
    },
    /// Move instance DOMAIN to a newer RELEASE of its app (tables migrate in place).
    Upgrade {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        release: String,
    },
    /// List instances.
    List,
}

#[derive(Subcommand)]
enum HyperCommand {
    /// Each target: its position in the change feed and how far behind it is, who holds it,
    /// a pause and the last error, the objects it refused.
    Status,
    /// Send every refused object again and lift pauses (the running servers pick it up).
    Retry,
    /// Rebuild the targets from the local objects: queue every object of the `@hyper` types
    /// (or of TYPE) to be sent again; resumes an interrupted resync.
    Resync {
        #[arg(long = "type")]
        type_name: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Make a key for instance DOMAIN and print it with its secret (shown only this once).
    /// The secret derives from the server's secret: run with the same ARCBASE_JWT_SECRET as
    /// `serve`.
    Create {
        #[arg(long)]
        domain: String,
    },
    /// List the keys (never their secrets).
    List,
    /// Revoke KEY: its tokens are refused from now on (within seconds on every node).
    Revoke { key: String },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Validate an SDL file and print the complete generated SDL.
    Build {
        /// The app schema (GraphQL SDL).
        file: String,
        /// Write the generated SDL here instead of standard output.
        #[arg(long)]
        out: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Schema { command: SchemaCommand::Build { file, out } } => schema_build(&file, out.as_deref()),
        Command::Serve { schema, database, listen, shutdown_grace, storage_dir, hyper } => {
            init_tracing();
            // Request handling recurses over parsed documents, input values and filter trees.
            // Every input is bounded before that, but a worker stack larger than tokio's 2 MiB
            // default keeps a missed bound from aborting the whole process.
            let runtime =
                match tokio::runtime::Builder::new_multi_thread().thread_stack_size(8 << 20).enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        eprintln!("error: cannot start the runtime: {e}");
                        return ExitCode::FAILURE;
                    }
                };
            let admin_key = std::env::var("ARCBASE_ADMIN_KEY").ok().filter(|k| !k.is_empty());
            let trust_request_id =
                std::env::var("ARCBASE_TRUST_REQUEST_ID").is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
            let limits = match Limits::from_env(|k| std::env::var(k).ok()) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let allowed_hosts = std::env::var("ARCBASE_ALLOWED_HOSTS")
                .map(|v| v.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_string).collect())
                .unwrap_or_default();
            let queue_private_targets = std::env::var("ARCBASE_QUEUE_PRIVATE_TARGETS")
                .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
            let opts = ServeOptions {
                schema_path: schema,
                database_url: database,
                admin_key,
                limits,
                trust_request_id,
                allowed_hosts,
                storage_dir,
                queue_private_targets,
                hyper_url: hyper.filter(|h| !h.is_empty()),
                hyper_atomic_timeout: match std::env::var("ARCBASE_HYPER_ATOMIC_TIMEOUT_MS")
                    .ok()
                    .map(|v| v.parse::<u64>())
                {
                    None => std::time::Duration::from_secs(5),
                    Some(Ok(ms)) if ms > 0 => std::time::Duration::from_millis(ms),
                    Some(_) => {
                        eprintln!("error: ARCBASE_HYPER_ATOMIC_TIMEOUT_MS is a number of milliseconds above 0");
                        return ExitCode::from(2);
                    }
                },
            };
            runtime.block_on(serve(opts, listen, std::time::Duration::from_secs(shutdown_grace)))
        }
        Command::Limits => {
            let current = match Limits::from_env(|k| std::env::var(k).ok()) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let values = current.values();
            println!("| variable | value | limit |\n|---|---|---|");
            for ((_, var, _, doc), value) in Limits::table().into_iter().zip(values) {
                println!("| `{var}` | {value} | {doc} |");
            }
            ExitCode::SUCCESS
        }
        Command::Release { command, database } => registry_command(&database, Registry::Release(command)),
        Command::Instance { command, database } => registry_command(&database, Registry::Instance(command)),
        Command::Key { command, database } => key_command(&database, command),
        Command::Hyper { command, database } => hyper_command(&database, command),
    }
}

/// Run `f` with the store at `database` on a small runtime: the frame of every command that
/// talks to the database (`release`, `instance`, `key`, `hyper`).
fn with_store<F, Fut>(database: &str, f: F) -> ExitCode
where
    F: FnOnce(arcbase::store::Store) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match arcbase::store::Store::open(database).await {
            Ok(store) => f(store).await,
            Err(e) => {
                eprintln!("error: database: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// `hyper ...`: print JSON.
fn hyper_command(database: &str, command: HyperCommand) -> ExitCode {
    with_store(database, move |store| async move {
        let result = match command {
            HyperCommand::Status => arcbase::hyper::bridge::status(&store).await,
            HyperCommand::Retry => {
                arcbase::hyper::bridge::retry(&store).await.map(|n| serde_json::json!({ "marked": n }))
            }
            HyperCommand::Resync { type_name } => {
                let mut progress = |ty: &str, domain: &str, n: u64| {
                    eprint!("\rresync {ty} ({domain}): {n} objects queued   ");
                };
                let r = arcbase::hyper::bridge::resync(&store, type_name.as_deref(), &mut progress).await;
                eprintln!();
                match r {
                    Ok(v) => Ok(v),
                    Err(e) => {
                        store.close().await;
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
        };
        store.close().await;
        match result {
            Ok(v) => {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// `key ...`: print JSON, exit 2 on refusal.
fn key_command(database: &str, command: KeyCommand) -> ExitCode {
    with_store(database, move |store| async move {
        let result: Result<Result<serde_json::Value, String>, arcbase::store::StoreError> = async {
            match command {
                KeyCommand::Create { domain } => {
                    let Some(instance) = store.instance_rows().await?.into_iter().find(|i| i.domain == domain) else {
                        return Ok(Err(format!("unknown instance '{domain}'")));
                    };
                    if std::env::var("ARCBASE_JWT_SECRET").map_or(true, |s| s.is_empty()) {
                        eprintln!("note: ARCBASE_JWT_SECRET is not set: the secret derives from the secret generated into the database (set it, the same for `serve`, so that the database alone cannot reveal app secrets)");
                    }
                    let secret = arcbase::auth::server_secret(&store).await?;
                    let key = arcbase::hyper::keys::create(&store, secret.as_bytes(), &instance.id).await?;
                    Ok(Ok(serde_json::json!({
                        "key": key.key, "secret": key.secret, "domain": domain,
                        "connection": format!("http://{}:{}@HOST/STORE", key.key, key.secret),
                    })))
                }
                KeyCommand::List => Ok(Ok(serde_json::json!({ "keys": arcbase::hyper::keys::list(&store).await? }))),
                KeyCommand::Revoke { key } => Ok(if arcbase::hyper::keys::revoke(&store, &key).await? {
                    Ok(serde_json::json!({ "revoked": key }))
                } else {
                    Err(format!("no key '{key}' that is not revoked"))
                }),
            }
        }
        .await;
        store.close().await;
        match result {
            Ok(Ok(v)) => {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Ok(Err(refused)) => {
                eprintln!("error: {refused}");
                ExitCode::from(2)
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

enum Registry {
    Release(ReleaseCommand),
    Instance(InstanceCommand),
}

/// `release ...` and `instance ...`: run against the database, print JSON, exit 2 on refusal.
fn registry_command(database: &str, command: Registry) -> ExitCode {
    use arcbase::tenancy;
    with_store(database, move |store| async move {
        let result: Result<serde_json::Value, tenancy::TenancyError> = match command {
            Registry::Release(ReleaseCommand::Publish { app, name, file }) => match std::fs::read_to_string(&file) {
                Ok(sdl) => tenancy::publish(&store, &app, &name, &sdl).await.map(
                    |p| serde_json::json!({ "app": app, "name": name, "created": p == tenancy::Published::Created }),
                ),
                Err(e) => {
                    eprintln!("{file}: cannot read: {e}");
                    return ExitCode::from(2);
                }
            },
            Registry::Release(ReleaseCommand::List { app }) => {
                store.releases(Some(&app)).await.map(|r| serde_json::json!({ "releases": r })).map_err(Into::into)
            }
            Registry::Instance(InstanceCommand::Create {
                domain,
                app,
                release,
                allow_anonymous_requests,
                allow_anonymous_registrations,
            }) => {
                let settings = tenancy::InstanceSettings {
                    anonymous_requests: allow_anonymous_requests,
                    anonymous_registrations: allow_anonymous_registrations,
                };
                tenancy::create_instance(&store, &domain, &app, &release, settings)
                    .await
                    .map(|i| serde_json::json!({ "instance": i }))
            }
            Registry::Instance(InstanceCommand::Upgrade { domain, release }) => {
                tenancy::upgrade_instance(&store, &domain, &release).await.map(|i| serde_json::json!({ "instance": i }))
            }
            Registry::Instance(InstanceCommand::List) => {
                store.instance_rows().await.map(|i| serde_json::json!({ "instances": i })).map_err(Into::into)
            }
        };
        store.close().await;
        match result {
            Ok(v) => {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Err(e) if e.is_client_error() => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Logs on standard error, filtered by `RUST_LOG`. With `ARCBASE_LOG_SPANS=1` every step of a
/// request (guard, validate, each root field, plan, statement) also logs its duration when
/// it ends, so a slow request can be read from the log.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let spans = if std::env::var("ARCBASE_LOG_SPANS").is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes")) {
        tracing_subscriber::fmt::format::FmtSpan::CLOSE
    } else {
        tracing_subscriber::fmt::format::FmtSpan::NONE
    };
    tracing_subscriber::fmt().with_env_filter(filter).with_span_events(spans).with_writer(std::io::stderr).init();
}

fn schema_build(file: &str, out: Option<&str>) -> ExitCode {
    let sdl = match std::fs::read_to_string(file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{file}: cannot read: {e}");
            return ExitCode::from(2);
        }
    };
    let model = match arcbase::model::parse_sdl(&sdl) {
        Ok(m) => m,
        Err(errors) => {
            eprintln!("{}", server::format_diagnostics(file, &errors));
            return ExitCode::from(2);
        }
    };
    let generated = match arcbase::graphql::generated_sdl(&model) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{file}: the generated schema is invalid: {e}");
            return ExitCode::from(2);
        }
    };
    match out {
        Some(path) => {
            if let Err(e) = std::fs::write(path, generated) {
                eprintln!("{path}: cannot write: {e}");
                return ExitCode::FAILURE;
            }
        }
        None => print!("{generated}"),
    }
    ExitCode::SUCCESS
}

async fn serve(opts: ServeOptions, listen: String, grace: std::time::Duration) -> ExitCode {
    let dev_mode = opts.admin_key.is_none();
    let app = match server::build(&opts).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or(listen);
    if dev_mode {
        tracing::warn!("ARCBASE_ADMIN_KEY is not set: development mode, every request acts as admin");
    }
    println!("arcbase serving {} on {}", app.serving, opts.database_url);
    println!("playground: http://{addr}/graphql");
    let store = app.store.clone();
    let tasks = app.tasks.clone();
    let limits = app.limits.clone();
    // Graceful: stop accepting, let requests in progress finish within `grace`, then close.
    let shutdown = async {
        shutdown_signal().await;
        tracing::info!("shutting down: no new connections");
    };
    server::listen::serve(listener, server::router(app), &limits, shutdown, grace).await;
    // Background tasks stop on the same signal; then requests that were mid-write finish
    // (the pool waits for its connections), but not forever.
    tasks.shutdown(grace).await;
    if tokio::time::timeout(grace, store.close()).await.is_err() {
        tracing::warn!("the database did not close within {}s", grace.as_secs());
    }
    tracing::info!("shut down");
    ExitCode::SUCCESS
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
