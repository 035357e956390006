//! Start-up: connect and migrate, load businesses, build the engine, bind the server, start
//! workers; the router is `router::app`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use switchboard_engine::store::settings;
use switchboard_engine::{ChangeFeed, Db, Engine, Registry, WorkerOptions, Workers};
use switchboard_simulator::Simulator;
use switchboard_workflows::business;
use switchboard_workflows::lead_call::{self, Deps};
use switchboard_workflows::policy::{BusinessClock, Policy};
use switchboard_workflows::providers::elevenlabs::{self, ElevenLabs, ElevenLabsClient};
use switchboard_workflows::providers::openai::{self, OpenAiClient};
use switchboard_workflows::providers::resilience::{BreakerSettings, Resilience, RetryPolicy};
use switchboard_workflows::providers::retell::{self, Retell};
use switchboard_workflows::providers::voice::{Voice, Voices};
use switchboard_workflows::scripting::host::{ScriptHost, content_hash};
use switchboard_workflows::scripting::sandbox::Limits;
use switchboard_workflows::store;
use switchboard_workflows::{retention, schedules};
use tokio::net::TcpListener;
use tokio_util::task::AbortOnDropHandle;
use tracing::info;

use crate::access::{self, Bootstrap};
use crate::config::Config;
use crate::limits::RateLimits;
use crate::listener::ApiListener;
pub use crate::state::AppState;

/// How long after start a process that runs workers first sweeps leads past retention.
const FIRST_SWEEP_AFTER: Duration = Duration::from_secs(60);

/// What a process that runs workers runs beside them: the retention sweep (see `retention`) and
/// the cron campaigns (see `schedules`). They stop when this is dropped.
pub type BackgroundJobs = AbortOnDropHandle<()>;

/// Starts the [`BackgroundJobs`] of `engine`.
fn background_jobs(engine: &Engine, config: &Config) -> BackgroundJobs {
    let sweep = retention::sweep_periodically(
        engine.clone(),
        FIRST_SWEEP_AFTER,
        config.call_audio_dir.clone(),
    );
    let schedules = schedules::run_all(engine.clone());
    AbortOnDropHandle::new(tokio::spawn(async move {
        tokio::join!(sweep, schedules);
    }))
}

/// How long requests in flight get to end after a shutdown signal.
pub const SERVER_GRACE: Duration = Duration::from_secs(5);

/// A built, bound application, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    queue_board: (TcpListener, Router),
    /// The engine (tests stop and start workers through it).
    pub engine: Engine,
    /// The simulator, when no provider keys are set (it serves on its own port).
    pub simulator: Option<Simulator>,
    /// The voice provider's retries and circuit breaker.
    pub voice_resilience: Arc<Resilience>,
    /// This process' workers.
    pub workers: Option<Workers>,
    /// What runs beside the workers, when they run.
    background: Option<BackgroundJobs>,
    /// Worker settings, to start workers again.
    pub worker_options: WorkerOptions,
    port: u16,
    public_url: String,
}

/// Choices that are not settings: the API-only role, and test knobs.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Replaces every business' webhook deadline (tests).
    pub await_call_timeout: Option<Duration>,
    /// Serve the API and dashboard without workers (`serve --no-workers`).
    pub no_workers: bool,
    /// The clock business scripts, routing and the calling-hours check see (default: the
    /// system clock).
    pub business_clock: BusinessClock,
}

/// What every role of a process needs: the database, the providers (or the simulator), the
/// business policy, the engine, and its own metrics listener when one is configured.
struct Core {
    engine: Engine,
    simulator: Option<Simulator>,
    voices: Voices,
    voice_resilience: Arc<Resilience>,
    policy: Arc<Policy>,
}

impl Core {
    /// Connects, migrates, loads the shipped businesses and builds the engine; the simulator's
    /// webhooks go to `public_url`.
    async fn build(
        config: &Config,
        overrides: &Overrides,
        public_url: &str,
    ) -> anyhow::Result<Core> {
        config
            .validate(!overrides.no_workers)
            .map_err(anyhow::Error::msg)?;
        crate::prometheus::handle(); // record from the first step on
        let db = Db::connect(
            &config.database_url,
            config.db_connections(!overrides.no_workers),
        )
        .await?;
        switchboard_engine::migrate(&db).await?;
        load_businesses(&db, config.businesses_dir.as_deref()).await?;
        // Unconfigured (simulator only): one secret per database, so every process verifies the
        // webhooks any process' simulator signs.
        let webhook_secret = match &config.elevenlabs_webhook_secret {
            Some(s) => s.clone(),
            None => {
                let fresh = hex::encode(rand::random::<[u8; 32]>());
                settings::get_or_insert(&db, "simulator.webhook_secret", &fresh).await?
            }
        };
        let simulated_voice = config.elevenlabs_api_key.is_none();
        let simulated_retell = config.retell_api_key.is_none();
        let simulated_llm = config.openai_api_key.is_none();
        let simulator = (simulated_voice || simulated_retell || simulated_llm).then(|| {
            Simulator::new(
                format!("{public_url}/api/v1/webhooks/elevenlabs"),
                webhook_secret.clone(),
            )
            .with_retell_webhook_url(format!("{public_url}/api/v1/webhooks/retell"))
        });
        let sim_url = match &simulator {
            Some(sim) => sim
                .serve(config.simulator_addr)
                .await
                .map_err(|e| bind_error(config.simulator_addr, "SWITCHBOARD_SIMULATOR_ADDR", e))?,
            None => String::new(),
        };
        let (voice_resilience, retell_resilience, llm_resilience) = resilience(config);
        let timeout = config.provider_timeout();
        let voice_client = match &config.elevenlabs_api_key {
            Some(key) => {
                ElevenLabsClient::new(config.elevenlabs_base_url.clone(), key.clone(), timeout)
            }
            None => ElevenLabsClient::new(format!("{sim_url}/elevenlabs"), "simulated", timeout),
        }
        .with_resilience(voice_resilience.clone());
        // Retell signs its webhooks with the API key; the simulator's is the database's secret.
        let retell = match &config.retell_api_key {
            Some(key) => Retell::new(config.retell_base_url.clone(), key.clone(), timeout),
            None => Retell::new(format!("{sim_url}/retell"), webhook_secret.clone(), timeout),
        }
        .with_resilience(retell_resilience);
        let voices = Voices {
            elevenlabs: Voice {
                provider: Arc::new(ElevenLabs::new(voice_client, webhook_secret)),
                simulated: simulated_voice,
            },
            retell: Voice {
                provider: Arc::new(retell),
                simulated: simulated_retell,
            },
        };
        let llm = match &config.openai_api_key {
            Some(key) => OpenAiClient::new(
                config.openai_base_url.clone(),
                key.clone(),
                config.openai_model.clone(),
                timeout,
            ),
            None => OpenAiClient::new(
                format!("{sim_url}/openai"),
                "simulated",
                config.openai_model.clone(),
                timeout,
            ),
        }
        .with_resilience(llm_resilience);
        let host = Arc::new(ScriptHost::new(Limits::default(), config.script_threads)?);
        let policy =
            Arc::new(Policy::new(host, db.clone()).with_clock(overrides.business_clock.clone()));
        let deps = Arc::new(Deps {
            db: db.clone(),
            voices: voices.clone(),
            llm: Arc::new(llm),
            policy: policy.clone(),
            await_call_timeout: overrides.await_call_timeout,
            max_concurrent_calls: config.max_concurrent_calls,
            max_calls_per_minute: config.max_calls_per_minute,
            provider_down_wait: Duration::from_secs(config.breaker_open_secs.max(1)),
        });
        let registry = Registry::new().register(lead_call::workflow(deps)?)?;
        if let Some(addr) = config.metrics_addr {
            let bound = crate::prometheus::serve_listener(addr, db.clone())
                .await
                .map_err(|e| bind_error(addr, "SWITCHBOARD_METRICS_ADDR", e))?;
            info!(metrics = %bound, "serving metrics");
        }
        info!(database = %redact(&config.database_url), simulated_voice, simulated_retell, simulated_llm, simulator = %sim_url, "engine ready");
        Ok(Core {
            engine: Engine::new(db, registry),
            simulator,
            voices,
            voice_resilience,
            policy,
        })
    }
}

/// The worker settings of `config`.
fn worker_options(config: &Config) -> WorkerOptions {
    WorkerOptions {
        concurrency: config.worker_concurrency,
        poll_interval: config.poll_interval(),
        ..WorkerOptions::default()
    }
}

/// How long a stopping process waits for the calls its simulator placed to end and post their
/// webhooks (a simulated call lasts 300 ms unless the lead asks for longer).
const SIMULATED_CALLS_GRACE: Duration = Duration::from_secs(12);

/// Lets the simulator's calls in flight end and post their webhooks, as a real provider's would
/// after this process is gone.
async fn finish_simulated_calls(simulator: Option<&Simulator>) {
    if let Some(sim) = simulator
        && !sim.finish_calls(SIMULATED_CALLS_GRACE).await
    {
        tracing::warn!("stopping with simulated calls whose webhooks were not delivered");
    }
}

/// `switchboard worker`: runs steps until `shutdown` resolves, then lets the steps in flight
/// finish (those still running after the shutdown timeout go back to the queue). Serves no HTTP;
/// the simulator's webhooks, when it is used, go to `SWITCHBOARD_PUBLIC_URL` (an API process).
pub async fn run_worker(
    config: Config,
    overrides: &Overrides,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.addr));
    let core = Core::build(&config, overrides, &public_url).await?;
    let workers = core.engine.start_workers(worker_options(&config));
    let background = background_jobs(&core.engine, &config);
    info!(worker = %workers.name(), %public_url, "worker running");
    shutdown.await;
    drop(background);
    workers.stop().await;
    finish_simulated_calls(core.simulator.as_ref()).await;
    Ok(())
}

impl Application {
    /// Connects, migrates, loads the shipped businesses, binds `config.addr` and the queue view's
    /// address, and starts workers unless told not to.
    pub async fn build(config: Config, overrides: Overrides) -> anyhow::Result<Application> {
        let listener = bind(config.addr, "SWITCHBOARD_ADDR (--addr)").await?;
        let port = listener.local_addr()?.port();
        let board_listener = bind(
            config.queue_board_addr,
            "SWITCHBOARD_QUEUE_BOARD_ADDR (--queue-board-addr)",
        )
        .await?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}:{port}", config.addr.ip()));
        let core = Core::build(&config, &overrides, &public_url).await?;
        let engine = core.engine;
        match access::bootstrap(engine.db(), config.operator_key.as_deref()).await? {
            Bootstrap::Created(key) => {
                // Shown this once; only its hash is stored.
                println!(
                    "\nCreated the first operator key (shown only now; store it safely):\n\n    \
                     {key}\n\nSign in to the dashboard with it, or send it as \
                     `Authorization: Bearer <key>`.\n"
                );
                info!("created the first operator key (printed once on standard output)");
            }
            Bootstrap::SettingRevoked => tracing::warn!(
                "SWITCHBOARD_OPERATOR_KEY was revoked (or is a business' key): it does not work; \
                 set another"
            ),
            Bootstrap::FromSetting | Bootstrap::Existing => {}
        }
        let feed = ChangeFeed::start(engine.db().clone()).await?;
        let worker_options = worker_options(&config);
        let workers = (!overrides.no_workers).then(|| engine.start_workers(worker_options.clone()));
        let background = workers.is_some().then(|| background_jobs(&engine, &config));
        let state = AppState {
            worker_name: workers.as_ref().map(|w| Arc::from(w.name())),
            request_timeout: Duration::from_secs(config.request_timeout_secs),
            engine: engine.clone(),
            feed: feed.clone(),
            voices: core.voices,
            call_audio_dir: config.call_audio_dir.clone(),
            cors_origins: config.cors_origins.clone().into(),
            personalization_secret: config
                .elevenlabs_personalization_secret
                .as_deref()
                .map(Arc::from),
            policy: core.policy,
            queue_board_url: queue_board_url(&board_listener, &public_url)?.into(),
            limits: Arc::new(RateLimits::new(
                per_second(config.key_rate_limit),
                per_second(config.address_rate_limit),
            )),
            secure_cookies: public_url.starts_with("https://"),
        };
        let board_url = state.queue_board_url.clone();
        let router = crate::router::app(state);
        let queue_board = (board_listener, crate::queue_board::router(feed));
        info!(%public_url, queue_board = %board_url, workers = workers.is_some(), "switchboard ready");
        Ok(Application {
            listener,
            router,
            queue_board,
            engine,
            simulator: core.simulator,
            voice_resilience: core.voice_resilience,
            workers,
            background,
            worker_options,
            port,
            public_url,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL this server is reachable at.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Serves until `shutdown` resolves; then lets the workers finish the steps in flight (see
    /// [`WorkerOptions::shutdown_timeout`]) and the simulator's calls post their webhooks, stops
    /// accepting requests, lets those in flight end and returns. Live event streams never end by
    /// themselves: they are cut after [`SERVER_GRACE`].
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (board_listener, board) = self.queue_board;
        let board = tokio::spawn(axum::serve(board_listener, board).into_future());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            axum::serve(ApiListener(self.listener), with_peers(self.router))
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .into_future(),
        );
        shutdown.await;
        // Requests are still served meanwhile: webhooks for calls in flight resume their runs.
        drop(self.background);
        if let Some(workers) = self.workers {
            workers.stop().await;
        }
        finish_simulated_calls(self.simulator.as_ref()).await;
        let _ = stop_tx.send(());
        let abort = server.abort_handle();
        match tokio::time::timeout(SERVER_GRACE, server).await {
            Ok(served) => served??,
            Err(_) => {
                info!("closing the connections still open (event streams)");
                abort.abort();
            }
        }
        board.abort();
        Ok(())
    }

    /// Splits off the serving part, keeping the engine and workers for the caller (tests).
    pub fn into_parts(self) -> Parts {
        Parts {
            serve: Box::pin(serve_both((self.listener, self.router), self.queue_board)),
            engine: self.engine,
            simulator: self.simulator,
            voice_resilience: self.voice_resilience,
            workers: self.workers,
            background: self.background,
            worker_options: self.worker_options,
        }
    }
}

/// An [`Application`] taken apart: the server future and the handles tests drive.
pub struct Parts {
    /// Serves requests until dropped.
    pub serve: std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>,
    /// The engine.
    pub engine: Engine,
    /// The simulator, when used.
    pub simulator: Option<Simulator>,
    /// The voice provider's retries and circuit breaker.
    pub voice_resilience: Arc<Resilience>,
    /// Running workers, if started.
    pub workers: Option<Workers>,
    /// What runs beside the workers, if they run: keep it as long as they do.
    pub background: Option<BackgroundJobs>,
    /// Settings to start workers again.
    pub worker_options: WorkerOptions,
}

/// The router as a service that knows each connection's peer (rate limits by client address).
fn with_peers(
    router: Router,
) -> axum::extract::connect_info::IntoMakeServiceWithConnectInfo<Router, crate::listener::Peer> {
    router.into_make_service_with_connect_info::<crate::listener::Peer>()
}

/// Binds `addr`, the value of `setting`; an address in use or not allowed says which setting to
/// change.
async fn bind(addr: std::net::SocketAddr, setting: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| bind_error(addr, setting, e))
}

/// The error of listening on `addr`, the value of `setting`.
fn bind_error(addr: std::net::SocketAddr, setting: &str, e: std::io::Error) -> anyhow::Error {
    let hint = match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another process listens there, perhaps another switchboard)"
        }
        _ => "",
    };
    anyhow::anyhow!("cannot listen on {addr}{hint}: {e}; set {setting} to another address")
}

/// A validated rate (`Config::validate` refuses 0).
fn per_second(n: u32) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN)
}

/// Serves the API and the queue view until either fails (or the future is dropped).
async fn serve_both(
    (listener, router): (TcpListener, Router),
    (board_listener, board): (TcpListener, Router),
) -> std::io::Result<()> {
    tokio::try_join!(
        axum::serve(ApiListener(listener), with_peers(router)).into_future(),
        axum::serve(board_listener, board).into_future(),
    )?;
    Ok(())
}

/// The queue view's URL: its own address, or the public URL's host when it listens on every
/// interface.
fn queue_board_url(listener: &TcpListener, public_url: &str) -> anyhow::Result<String> {
    let addr = listener.local_addr()?;
    let host = if addr.ip().is_unspecified() {
        reqwest::Url::parse(public_url)?
            .host_str()
            .unwrap_or("127.0.0.1")
            .to_owned()
    } else {
        addr.ip().to_string()
    };
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    Ok(format!("http://{host}:{}/", addr.port()))
}

/// Seeds the database with the businesses shipped in `scripts/` and those in `dir`: a business
/// it does not hold yet is created with the folder's configuration and script. One it holds is
/// left as it is: configurations and scripts are data, changed through the API or
/// `switchboard businesses import`, and their versions survive restarts.
pub async fn load_businesses(db: &Db, dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    for d in business::definitions(dir).map_err(anyhow::Error::msg)? {
        let mut tx = db.begin().await?;
        store::configs::create(&mut tx, &d.business).await?;
        if !store::scripts::has_any_in(&mut tx, &d.business.id).await? {
            store::scripts::store_and_activate(
                &mut tx,
                &d.business.id,
                &content_hash(&d.script),
                &d.script,
            )
            .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// One breaker and retry policy per provider, from the settings.
fn resilience(config: &Config) -> (Arc<Resilience>, Arc<Resilience>, Arc<Resilience>) {
    let breaker = BreakerSettings {
        failure_threshold: config.breaker_threshold,
        open_for: Duration::from_secs(config.breaker_open_secs),
    };
    let make = |provider| {
        Arc::new(Resilience::new(
            provider,
            RetryPolicy::default(),
            breaker.clone(),
        ))
    };
    (
        make(elevenlabs::PROVIDER),
        make(retell::PROVIDER),
        make(openai::PROVIDER),
    )
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}
