//! `make package` (issue 16, item 4): the Debian package installs into a
//! PostgreSQL 15 that has never seen pg_vigil — a copy of this machine's
//! server without pg_vigil's files, the package unpacked over it as dpkg
//! would — and the pg_regress suite passes there. `make e2e` builds the
//! package first (a debug build, stripped: what is tested is the
//! packaging; `make package` builds the release that ships).

use pg_vigil_e2e::Cluster;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// pg_vigil's version (this test crate has its own).
fn version() -> String {
    let manifest =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml")).unwrap();
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("a version line in Cargo.toml")
        .to_string()
}

fn the_package() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/package");
    let debs: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run scripts/package.sh; make e2e does)",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one package in {}: {debs:?}", dir.display());
    debs.into_iter().next().unwrap()
}

pub fn the_debian_package_installs_into_a_clean_postgresql_and_passes_pg_regress(_c: &Cluster) {
    let deb = the_package();
    let version = version();
    let deb_s = deb.to_str().unwrap();
    let field = |f: &str| run("dpkg-deb", &["-f", deb_s, f]).trim().to_string();
    assert_eq!(field("Package"), "postgresql-15-pg-vigil");
    assert_eq!(field("Version"), version);
    assert!(
        field("Depends").starts_with("postgresql-15"),
        "{}",
        field("Depends")
    );
    let files = run("dpkg-deb", &["-c", deb_s]);
    for needed in [
        "./usr/lib/postgresql/15/lib/pg_vigil.so",
        "./usr/share/postgresql/15/extension/pg_vigil.control",
        &format!("./usr/share/postgresql/15/extension/pg_vigil--{version}.sql"),
        "./usr/share/postgresql/15/extension/pg_vigil--0.1.0--0.2.0.sql",
        "./usr/share/doc/postgresql-15-pg-vigil/copyright",
    ] {
        assert!(
            files.contains(needed),
            "{needed} not in the package:\n{files}"
        );
    }

    // A PostgreSQL 15 without pg_vigil: this machine's server, copied, with
    // pg_vigil's files removed; then the package's files as dpkg puts them.
    let root = std::env::temp_dir().join(format!("pg_vigil_e2e_pkgroot_{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    let pg_config = std::env::var("PG_CONFIG")
        .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin/pg_config".into());
    let pkglibdir = run(&pg_config, &["--pkglibdir"]).trim().to_string();
    let sharedir = run(&pg_config, &["--sharedir"]).trim().to_string();
    fs::create_dir_all(root.join("usr/lib/postgresql")).unwrap();
    fs::create_dir_all(root.join("usr/share/postgresql")).unwrap();
    run(
        "cp",
        &[
            "-a",
            &format!("{pkglibdir}/.."),
            root.join("usr/lib/postgresql/15").to_str().unwrap(),
        ],
    );
    run(
        "cp",
        &[
            "-a",
            &sharedir,
            root.join("usr/share/postgresql/15").to_str().unwrap(),
        ],
    );
    let lib = root.join("usr/lib/postgresql/15/lib");
    let ext = root.join("usr/share/postgresql/15/extension");
    fs::remove_file(lib.join("pg_vigil.so")).unwrap();
    for e in fs::read_dir(&ext).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("pg_vigil")
        {
            fs::remove_file(p).unwrap();
        }
    }
    run("dpkg-deb", &["-x", deb_s, root.to_str().unwrap()]);
    let needed = run(
        "objdump",
        &["-p", lib.join("pg_vigil.so").to_str().unwrap()],
    );
    assert!(
        !needed.contains("libstd-"),
        "pg_vigil.so must not need Rust's shared standard library:\n{needed}"
    );

    let cluster = Cluster::start_with_bindir(
        "pkg",
        &["vigil.database = 'postgres'"],
        root.join("usr/lib/postgresql/15/bin"),
    );
    let mut db = cluster.connect("postgres");
    let installed: String = {
        db.batch_execute("CREATE EXTENSION pg_vigil").unwrap();
        db.query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_vigil'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    assert_eq!(installed, version);
    if let Err(diff) = cluster.pg_regress("vigil_pkg_regress") {
        panic!("pg_regress against the installed package failed:\n{diff}");
    }
    drop(db);
    drop(cluster);
    let _ = fs::remove_dir_all(&root);
}
