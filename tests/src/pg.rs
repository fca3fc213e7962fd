//! A throwaway PostgreSQL for the tests, from Debian's `postgresql` package
//! (installed by `scripts/setup --all`): `initdb` in a temporary directory,
//! as the unprivileged user `nobody` when the tests run as root, listening
//! on a loopback port only, and stopped when the test process ends (it is
//! started from a thread that lives as long as the process, with a
//! parent-death signal).
//!
//! Its directory (about 100 MB) goes with it: a [`Postgres`] stops its
//! server and removes the directory when dropped, the shared [`server`]
//! when the process exits, and a directory whose test process died without
//! either (killed by a signal) is removed by the next start. Left behind,
//! a hundred runs filled the CI machine's disk.
//!
//! Each caller gets a database of its own ([`Postgres::database`]).
//! `HANDOVER_SKIP_PG=1` makes the tests that need PostgreSQL skip, loudly;
//! CI never sets it.

use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The running server.
pub struct Postgres {
    port: u16,
    pid: std::sync::atomic::AtomicI32,
    /// The server's command line, to start it again ([`Postgres::restart`]).
    args: Vec<String>,
    next: AtomicUsize,
    _dir: tempfile::TempDir,
}

/// Start `postgres` with `args` in `dir` (its log: `dir/postgres.log`,
/// appended to); its pid. The server is a child of a thread that lives as
/// long as the process: when the process ends, the parent-death signal
/// stops it.
fn spawn(dir: &Path, args: &[String]) -> Result<libc::pid_t, String> {
    let postgres = bin_dir()?.join("postgres");
    let log = dir.join("postgres.log");
    let dir_for_thread = dir.to_owned();
    let args = args.to_vec();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("postgres".into())
        .spawn(move || {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log);
            let mut cmd = Command::new(postgres);
            cmd.args(&args)
                .current_dir(&dir_for_thread)
                .stdout(Stdio::null())
                // A group of its own: [`Postgres::kill_hard`] takes the
                // postmaster and every backend at once, as a machine dies.
                .process_group(0);
            match log {
                Ok(f) => cmd.stderr(f),
                Err(_) => cmd.stderr(Stdio::null()),
            };
            as_unprivileged(&mut cmd, true);
            match cmd.spawn() {
                Ok(mut child) => {
                    let _ = tx.send(Ok(child.id()));
                    let _ = child.wait();
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("postgres: {e}")));
                }
            }
        })
        .map_err(|e| e.to_string())?;
    let pid = rx.recv().map_err(|e| e.to_string())??;
    libc::pid_t::try_from(pid).map_err(|e| e.to_string())
}

/// The name every test server's directory starts with.
const PREFIX: &str = "handover-pg-";

/// The file in a server's directory naming the test process it belongs to.
const OWNER: &str = "owner.pid";

/// Whether the tests that need PostgreSQL should skip (and say so).
pub fn skip(test: &str) -> bool {
    if std::env::var("HANDOVER_SKIP_PG").as_deref() == Ok("1") {
        eprintln!("\n*** SKIPPED {test}: HANDOVER_SKIP_PG=1 (PostgreSQL tests not run) ***\n");
        true
    } else {
        false
    }
}

/// The tests' shared server, started on first use.
pub fn server() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    extern "C" fn stop_at_exit() {
        if let Some(pg) = PG.get() {
            pg.stop();
            let _ = std::fs::remove_dir_all(pg.dir());
        }
    }
    PG.get_or_init(|| {
        let pg = Postgres::start(false).unwrap_or_else(|e| panic!("PostgreSQL for the tests: {e}"));
        // SAFETY: registers a plain function; it runs once, at exit.
        unsafe { libc::atexit(stop_at_exit) };
        pg
    })
}

/// Whether process `pid` is alive.
fn alive(pid: libc::pid_t) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    // Alive, but another user's.
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Remove the directories of test servers whose test process is gone
/// (killed before it could clean up); an unowned one once it is an hour old.
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let named = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(PREFIX));
        if !named || !path.is_dir() {
            continue;
        }
        let stale = match std::fs::read_to_string(path.join(OWNER)) {
            Ok(pid) => pid
                .trim()
                .parse::<libc::pid_t>()
                .is_ok_and(|pid| !alive(pid)),
            Err(_) => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(3600)),
        };
        if stale {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Where Debian keeps the server's programs: the newest version.
fn bin_dir() -> Result<PathBuf, String> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| {
            "no /usr/lib/postgresql: run scripts/setup --all (Debian package postgresql)".to_owned()
        })?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".to_owned())
}

/// The user the server runs as when the tests run as root.
pub const NOBODY: u32 = 65534;

fn as_unprivileged(cmd: &mut Command, die_with_parent: bool) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::getuid() == 0
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(NOBODY) != 0
                    || libc::setuid(NOBODY) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            if die_with_parent {
                // After setuid, which clears it.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
            }
            Ok(())
        });
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// A new directory for a test server (named so [`sweep_stale`] knows it,
/// owned by this process), with an empty `data` inside, both the
/// server's user's.
fn new_dir() -> Result<tempfile::TempDir, String> {
    sweep_stale();
    let dir = tempfile::Builder::new()
        .prefix(PREFIX)
        .tempdir()
        .map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join(OWNER), std::process::id().to_string())
        .map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    // 0700, as the server insists (initdb would set it; pg_basebackup does not).
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&data)
        .map_err(|e| e.to_string())?;
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        for p in [dir.path(), &data] {
            chown_nobody(p)?;
        }
    }
    Ok(dir)
}

/// Give `path` to [`NOBODY`] (the tests run as root).
fn chown_nobody(path: &Path) -> Result<(), String> {
    let c =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: a valid C string; chown has no other preconditions.
    if unsafe { libc::chown(c.as_ptr(), NOBODY, NOBODY) } != 0 {
        return Err(format!(
            "chown {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Run one of the server's tools to its end; its error output on failure.
fn run_tool(mut cmd: Command, name: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{name}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Postgres {
    /// Start a server. `durable`: the production settings (fsync); else
    /// the behavioural tests' quick ones.
    pub fn start(durable: bool) -> Result<Postgres, String> {
        Postgres::start_with(durable, &[])
    }

    /// [`start`](Self::start) with more server settings (`name=value`,
    /// each given as `-c`).
    pub fn start_with(durable: bool, settings: &[String]) -> Result<Postgres, String> {
        let dir = new_dir()?;
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin_dir()?.join("initdb"));
        initdb
            .args(["-D"])
            .arg(&data)
            .args(["-U", "handover", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .env_remove("PGDATA")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_unprivileged(&mut initdb, false);
        run_tool(initdb, "initdb")?;
        Postgres::launch(dir, durable, settings)
    }

    /// A hot standby of `primary`, streaming from it under the name
    /// `name` (the name `synchronous_standby_names` lists): a base backup
    /// (`pg_basebackup`), `standby.signal`, and `primary_conninfo` in
    /// `postgresql.auto.conf`, where [`Postgres::detach`] can take it away.
    pub fn standby_of(primary: &Postgres, name: &str, durable: bool) -> Result<Postgres, String> {
        let dir = new_dir()?;
        let data = dir.path().join("data");
        let mut backup = Command::new(bin_dir()?.join("pg_basebackup"));
        backup
            .args(["-h", "127.0.0.1", "-p", &primary.port.to_string()])
            .args(["-U", "handover", "-X", "stream", "--no-sync", "-D"])
            .arg(&data)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_unprivileged(&mut backup, false);
        run_tool(backup, "pg_basebackup")?;
        let write = |file: &str, text: String| -> Result<(), String> {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(data.join(file))
                .map_err(|e| format!("{file}: {e}"))?;
            f.write_all(text.as_bytes())
                .map_err(|e| format!("{file}: {e}"))
        };
        write("standby.signal", String::new())?;
        write(
            "postgresql.auto.conf",
            format!(
                "primary_conninfo = 'host=127.0.0.1 port={} user=handover application_name={name}'\n",
                primary.port
            ),
        )?;
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } == 0 {
            for f in ["standby.signal", "postgresql.auto.conf"] {
                chown_nobody(&data.join(f))?;
            }
        }
        Postgres::launch(dir, durable, &[])
    }

    /// Start `postgres` on the cluster in `dir/data`.
    fn launch(
        dir: tempfile::TempDir,
        durable: bool,
        settings: &[String],
    ) -> Result<Postgres, String> {
        let data = dir.path().join("data");
        let port = free_port()?;
        let mut args: Vec<String> = vec![
            "-D".into(),
            data.display().to_string(),
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-k".into(),
            dir.path().display().to_string(),
            "-c".into(),
            "max_connections=200".into(),
        ];
        if !durable {
            for c in [
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
            ] {
                args.push("-c".into());
                args.push(c.into());
            }
        }
        // After the defaults, so that a setting given wins.
        for c in settings {
            args.push("-c".into());
            args.push(c.clone());
        }
        let pid = spawn(dir.path(), &args)?;
        let pg = Postgres {
            port,
            pid: std::sync::atomic::AtomicI32::new(pid),
            args,
            next: AtomicUsize::new(0),
            _dir: dir,
        };
        pg.wait_ready()?;
        Ok(pg)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kill the server as a machine dies: SIGKILL to the postmaster and
    /// every backend at once, no shutdown, its connections reset. Returns
    /// when they are gone.
    pub fn kill_hard(&self) {
        let pid = self.pid.load(Ordering::SeqCst);
        // SAFETY: signals the process group of the server this process
        // started (`spawn` made it a group leader).
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Promote a standby to primary (`pg_ctl promote`, waiting until it
    /// takes writes).
    pub fn promote(&self) -> Result<(), String> {
        let mut promote = Command::new(bin_dir()?.join("pg_ctl"));
        promote
            .args(["promote", "-w", "-t", "60", "-D"])
            .arg(self._dir.path().join("data"))
            .current_dir(self._dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_unprivileged(&mut promote, false);
        run_tool(promote, "pg_ctl promote")
    }

    /// Stop a standby's streaming (its `primary_conninfo` emptied and the
    /// settings reloaded): from now on it falls behind, as a standby on a
    /// slow or broken link does. Returns when its WAL receiver is gone.
    pub fn detach(&self) -> Result<(), String> {
        let mut c = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .map_err(|e| e.to_string())?;
        c.batch_execute("ALTER SYSTEM SET primary_conninfo = ''")
            .and_then(|_| c.batch_execute("SELECT pg_reload_conf()"))
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let receiving: i64 = c
                .query_one("SELECT count(*) FROM pg_stat_wal_receiver", &[])
                .map_err(|e| e.to_string())?
                .get(0);
            if receiving == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("the standby's WAL receiver did not stop".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the server (fast shutdown: its connections are closed) and
    /// start it again on the same data and port; returns when it takes
    /// connections.
    pub fn restart(&self) -> Result<(), String> {
        self.shut_down();
        self.start_again()
    }

    /// Stop the server for good (fast shutdown); [`Postgres::restart`]
    /// starts it again.
    pub fn shut_down(&self) {
        self.stop();
    }

    /// Start the server again after [`Postgres::shut_down`].
    pub fn start_again(&self) -> Result<(), String> {
        let pid = spawn(self._dir.path(), &self.args)?;
        self.pid.store(pid, Ordering::SeqCst);
        self.wait_ready()
    }

    /// Wait, at most 60 s, until the server takes connections.
    fn wait_ready(&self) -> Result<(), String> {
        let pg = self;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let exited = !alive(pg.pid.load(Ordering::SeqCst));
            match postgres::Client::connect(&pg.url("postgres"), postgres::NoTls) {
                Ok(_) => return Ok(()),
                Err(_) if Instant::now() < deadline && !exited => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => {
                    let log = std::fs::read_to_string(pg._dir.path().join("postgres.log"))
                        .unwrap_or_default();
                    return Err(format!("postgres did not start: {e}\n{log}"));
                }
            }
        }
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://handover@127.0.0.1:{}/{name}", self.port)
    }

    /// A new, empty database; its URL.
    pub fn database(&self) -> String {
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            self.next.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the test PostgreSQL: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE: {e}"));
        self.url(&name)
    }

    /// The directory the server keeps its data and log in.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Stop the server (fast shutdown) and wait, at most 30 s, for it to go.
    fn stop(&self) {
        let pid = self.pid.load(Ordering::SeqCst);
        // SAFETY: signals the server this process started.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        // The directory goes with the TempDir.
    }
}
