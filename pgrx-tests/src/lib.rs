//! Test support for pg_vigil's end-to-end suite: a throwaway PostgreSQL 15
//! cluster that preloads pg_cron and pg_vigil, run as user `postgres` when
//! the tests run as root, and always stopped when the fixture is dropped.

pub mod sink;

use postgres::{Client, NoTls};
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub struct Cluster {
    root: PathBuf,
    bindir: PathBuf,
    run_as: Option<&'static str>,
    pub port: u16,
}

fn pg_config(flag: &str) -> String {
    let pg_config = std::env::var("PG_CONFIG")
        .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin/pg_config".into());
    let out = Command::new(&pg_config)
        .arg(flag)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {pg_config}: {e}"));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn bindir() -> PathBuf {
    PathBuf::from(pg_config("--bindir"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn check(what: &str, out: Output) -> Output {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A new, empty folder for cluster `name`, owned by `run_as`.
fn cluster_root(name: &str, run_as: Option<&str>) -> PathBuf {
    let root = std::env::temp_dir().join(format!("pg_vigil_e2e_{name}_{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).unwrap();
    if let Some(user) = run_as {
        check(
            "chown",
            Command::new("chown")
                .arg(format!("{user}:"))
                .arg(&root)
                .output()
                .unwrap(),
        );
    }
    root
}

impl Cluster {
    /// initdb + start a cluster with pg_cron and pg_vigil preloaded.
    /// `extra_conf` lines are appended to postgresql.conf.
    pub fn start(name: &str, extra_conf: &[&str]) -> Cluster {
        Cluster::start_with_bindir(name, extra_conf, bindir())
    }

    /// `start` on the binaries in `bindir`: another PostgreSQL installation,
    /// with the extension versions installed there (the upgrade test).
    pub fn start_with_bindir(name: &str, extra_conf: &[&str], bindir: PathBuf) -> Cluster {
        let run_as = is_root().then_some("postgres");
        let root = cluster_root(name, run_as);
        let cluster = Cluster {
            root,
            bindir,
            run_as,
            port: free_port(),
        };
        check(
            "initdb",
            cluster
                .pg_cmd("initdb")
                .args([
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(cluster.data_dir())
                .output()
                .unwrap(),
        );
        let mut conf = format!(
            "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             shared_preload_libraries = 'pg_cron,pg_vigil'\ncron.database_name = 'postgres'\n\
             cron.use_background_workers = on\n\
             fsync = off\nsynchronous_commit = off\nmax_connections = 60\n\
             log_line_prefix = '%m [%p] %b '\n",
            cluster.port,
            cluster.root.display()
        );
        for line in extra_conf {
            conf.push_str(line);
            conf.push('\n');
        }
        let conf_path = cluster.data_dir().join("postgresql.conf");
        let mut existing = fs::read_to_string(&conf_path).unwrap();
        existing.push_str(&conf);
        fs::write(&conf_path, existing).unwrap();
        cluster.pg_ctl_start();
        cluster
    }

    /// A hot standby of this cluster (pg_basebackup over loopback,
    /// streaming replication), on its own port, started.
    pub fn standby(&self, name: &str) -> Cluster {
        let standby = Cluster {
            root: cluster_root(name, self.run_as),
            bindir: self.bindir.clone(),
            run_as: self.run_as,
            port: free_port(),
        };
        check(
            "pg_basebackup",
            standby
                .pg_cmd("pg_basebackup")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .args(["-X", "stream", "-R", "-c", "fast", "--no-sync", "-D"])
                .arg(standby.data_dir())
                .output()
                .unwrap(),
        );
        // The primary's configuration came along: the last setting wins.
        let conf_path = standby.data_dir().join("postgresql.conf");
        let mut conf = fs::read_to_string(&conf_path).unwrap();
        conf.push_str(&format!(
            "port = {}\nunix_socket_directories = '{}'\nhot_standby = on\n",
            standby.port,
            standby.root.display()
        ));
        fs::write(&conf_path, conf).unwrap();
        standby.pg_ctl_start();
        standby
    }

    /// Promotes a standby to a primary (waits until it is one).
    pub fn promote(&self) {
        check(
            "pg_ctl promote",
            self.pg_cmd("pg_ctl")
                .args(["-w", "-t", "60", "-D"])
                .arg(self.data_dir())
                .arg("promote")
                .output()
                .unwrap(),
        );
    }

    /// Stops the cluster and starts it again on the binaries in `bindir`,
    /// as installing another package of PostgreSQL's extensions and
    /// restarting the server does; `None`: this machine's (PG_CONFIG's).
    pub fn restart_with_bindir(&mut self, bindir: Option<PathBuf>) {
        self.pg_ctl_stop("fast");
        self.bindir = bindir.unwrap_or_else(self::bindir);
        self.pg_ctl_start();
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.root.join("server.log")
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn pg_cmd(&self, program: &str) -> Command {
        let bin = self.bindir.join(program);
        match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(bin);
                c
            }
            None => Command::new(bin),
        }
    }

    /// Runs a client program of the cluster's PostgreSQL (pg_dump,
    /// pg_restore, psql) against it over loopback as `postgres`: its output.
    pub fn run_client(&self, program: &str, args: &[&str]) -> Output {
        Command::new(self.bindir.join(program))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }

    pub fn pg_ctl_start(&self) {
        check(
            "pg_ctl start",
            self.pg_cmd("pg_ctl")
                .args(["-w", "-t", "60", "-D"])
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.log_path())
                .arg("start")
                .output()
                .unwrap(),
        );
    }

    /// Stops the cluster with the given mode; returns how long it took.
    pub fn pg_ctl_stop(&self, mode: &str) -> Duration {
        let t = Instant::now();
        check(
            "pg_ctl stop",
            self.pg_cmd("pg_ctl")
                .args(["-w", "-t", "60", "-m", mode, "-D"])
                .arg(self.data_dir())
                .arg("stop")
                .output()
                .unwrap(),
        );
        t.elapsed()
    }

    fn running(&self) -> bool {
        Path::new(&self.data_dir().join("postmaster.pid")).exists()
    }

    pub fn connect(&self, dbname: &str) -> Client {
        self.try_connect(dbname)
            .unwrap_or_else(|e| panic!("connect to {dbname}: {e}"))
    }

    /// Like `connect`, for callers that expect the server to be down or
    /// restarting.
    pub fn try_connect(&self, dbname: &str) -> Result<Client, postgres::Error> {
        self.try_connect_as(dbname, "postgres")
    }

    /// Connects as `user` (the cluster trusts loopback: the attack suite
    /// logs in as its unprivileged roles).
    pub fn connect_as(&self, dbname: &str, user: &str) -> Client {
        self.try_connect_as(dbname, user)
            .unwrap_or_else(|e| panic!("connect to {dbname} as {user}: {e}"))
    }

    fn try_connect_as(&self, dbname: &str, user: &str) -> Result<Client, postgres::Error> {
        let conn = format!(
            "host=127.0.0.1 port={} user={user} dbname={dbname} connect_timeout=10",
            self.port
        );
        Client::connect(&conn, NoTls)
    }

    /// Creates a fresh database with pg_vigil installed and connects to it.
    pub fn fresh_db(&self, dbname: &str) -> Client {
        let mut admin = self.connect("postgres");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {dbname} WITH (FORCE)"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {dbname}"))
            .unwrap();
        let mut client = self.connect(dbname);
        client.batch_execute("CREATE EXTENSION pg_vigil").unwrap();
        client
    }
}

impl Cluster {
    /// A client program of the server's bindir (`pg_dump`, `pg_restore`,
    /// `psql`) connected to this cluster as `postgres`.
    fn client(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = self.pg_cmd(program);
        cmd.args([
            "--host",
            "127.0.0.1",
            "--port",
            &self.port.to_string(),
            "--username",
            "postgres",
        ])
        .args(args);
        cmd
    }

    /// Runs a client program and returns its stdout; panics with its stderr
    /// when it fails.
    pub fn tool_output(&self, program: &str, args: &[&str], what: &str) -> Vec<u8> {
        check(what, self.client(program, args).output().unwrap()).stdout
    }

    /// Runs a client program with `input` on stdin; panics with its output
    /// when it fails.
    pub fn tool_input(&self, program: &str, args: &[&str], input: &[u8]) {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = self
            .client(program, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = input.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        check(program, out);
    }

    /// Runs the pg_regress suite in `pgrx-tests/regress` (every `sql/*.sql`,
    /// compared with `expected/*.out`) in a fresh database. Returns the diff
    /// when it fails.
    pub fn pg_regress(&self, dbname: &str) -> Result<(), String> {
        drop(self.fresh_db(dbname));
        let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("regress");
        let mut tests: Vec<String> = fs::read_dir(suite.join("sql"))
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".sql").map(str::to_string)
            })
            .collect();
        tests.sort();
        let out_dir = self.root.join("regress");
        fs::create_dir_all(&out_dir).unwrap();
        let pkglibdir = pg_config("--pkglibdir");
        let out = Command::new(PathBuf::from(pkglibdir).join("pgxs/src/test/regress/pg_regress"))
            .arg("--use-existing")
            .arg("--host=127.0.0.1")
            .arg(format!("--port={}", self.port))
            .arg("--user=postgres")
            .arg(format!("--dbname={dbname}"))
            .arg(format!("--bindir={}", self.bindir.display()))
            .arg(format!("--inputdir={}", suite.display()))
            .arg(format!("--outputdir={}", out_dir.display()))
            .args(&tests)
            .output()
            .unwrap();
        if out.status.success() {
            Ok(())
        } else {
            let diffs = fs::read_to_string(out_dir.join("regression.diffs")).unwrap_or_default();
            Err(format!("{}\n{diffs}", String::from_utf8_lossy(&out.stdout)))
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running() {
            let _ = self
                .pg_cmd("pg_ctl")
                .args(["-w", "-t", "30", "-m", "immediate", "-D"])
                .arg(self.data_dir())
                .arg("stop")
                .output();
        }
        if std::env::var_os("VIGIL_E2E_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

/// SQLSTATE of running `sql` ("ok" when it worked).
pub fn try_sql(db: &mut Client, sql: &str) -> String {
    match db.batch_execute(sql) {
        Ok(()) => "ok".into(),
        Err(e) => e
            .code()
            .map(|c| c.code().to_string())
            .unwrap_or_else(|| e.to_string()),
    }
}

/// The CREATE TRIGGER that a role with TRIGGER on `table` could write to
/// look like rollup trigger `like` there: named `aaa_forged` (sorting
/// before vigil's), calling `vigil._rollup_trigger('<summary>', …)` with
/// the real trigger's definition changed at jsonb `path` to `value`.
pub fn forged_rollup_trigger(
    db: &mut Client,
    table: &str,
    like: &str,
    summary: &str,
    path: &str,
    value: &str,
) -> String {
    let forged: String = db
        .query_one(
            "SELECT format('CREATE TRIGGER aaa_forged AFTER INSERT ON %s REFERENCING NEW TABLE AS vigil_new
                            FOR EACH STATEMENT EXECUTE FUNCTION vigil._rollup_trigger(%L, %L)',
                           $1::text, $3::text,
                           jsonb_set(((string_to_array(encode(tgargs, 'escape'), '\\000'))[2])::jsonb,
                                     $4::text::text[], $5::text::jsonb))
             FROM pg_trigger WHERE tgname = $2::text::name AND tgrelid = $1::text::regclass",
            &[&table, &like, &summary, &path, &value],
        )
        .unwrap()
        .get(0);
    assert!(forged.contains("aaa_forged"), "{forged}");
    forged
}

/// Runs `ALTER SYSTEM` statements (each in its own transaction, as it
/// requires) and reloads the configuration.
pub fn set_config(db: &mut Client, statements: &[&str]) {
    for sql in statements {
        db.batch_execute(sql).unwrap();
    }
    db.batch_execute("SELECT pg_reload_conf()").unwrap();
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A test: its name and body. The runner catches panics so that one failure
/// does not hide the others, and the cluster is always stopped at the end.
pub type Test = (&'static str, fn(&Cluster));

/// Runs `tests` in order against `cluster`; prints a closing line in the form
/// `N passed, M failed` and exits non-zero when any test failed.
pub fn run(cluster: Cluster, tests: &[Test]) {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, Vec::new());
    for (name, body) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let t = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&cluster)));
        match result {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok ({:.1}s)", t.elapsed().as_secs_f64());
            }
            Err(_) => {
                failed.push(*name);
                println!("test {name} ... FAILED ({:.1}s)", t.elapsed().as_secs_f64());
            }
        }
    }
    if !failed.is_empty() {
        println!("\nserver log (tail):");
        let log = cluster.log();
        let lines: Vec<&str> = log.lines().collect();
        for line in &lines[lines.len().saturating_sub(60)..] {
            println!("  {line}");
        }
        println!("\nfailures: {}", failed.join(", "));
    }
    drop(cluster);
    println!("\ne2e: {passed} passed, {} failed", failed.len());
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
