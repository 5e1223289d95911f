//! Webhook sink for benchmarks: answers 200 to every request on 127.0.0.1 and
//! appends one line per request to a file, so delivery latency and duplicates
//! can be measured after the run.
//!
//! Usage: vigil_sink --port N --out FILE
//! Prints `listening <port>` once ready. It stops when its stdin reaches end
//! of file: the benchmark holds the pipe open and closes it to stop the sink,
//! which then writes what is still pending and exits 0. (A signal would kill
//! it before that last write, so signals are not the way to stop it.)
//!
//! Line format: `<received_unix_us>\t<Idempotency-Key or ->\t<body>`, with tab,
//! CR and LF in the body turned into spaces to keep one request per line.

use pg_vigil_e2e::sink::{Request, Sink};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::process::exit;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

/// Writing from here rather than from the connection threads keeps file I/O
/// off the request path.
const DRAIN_EVERY: Duration = Duration::from_millis(50);

fn usage(problem: &str) -> ! {
    eprintln!("vigil_sink: {problem}\nusage: vigil_sink --port N --out FILE");
    exit(2);
}

fn parse_args() -> (u16, String) {
    let mut port = None;
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{arg} needs a value")));
        match arg.as_str() {
            "--port" => {
                port = Some(
                    value
                        .parse()
                        .unwrap_or_else(|_| usage(&format!("bad port {value}"))),
                )
            }
            "--out" => out = Some(value),
            _ => usage(&format!("unknown argument {arg}")),
        }
    }
    (
        port.unwrap_or_else(|| usage("--port is required")),
        out.unwrap_or_else(|| usage("--out is required")),
    )
}

fn write_lines(file: &mut BufWriter<File>, requests: &[Request]) -> io::Result<()> {
    for r in requests {
        let key = r.header("idempotency-key").unwrap_or("-");
        write!(file, "{}\t{key}\t", r.received_unix_us)?;
        let body: Vec<u8> = r
            .body
            .iter()
            .map(|&b| {
                if matches!(b, b'\t' | b'\r' | b'\n') {
                    b' '
                } else {
                    b
                }
            })
            .collect();
        file.write_all(&body)?;
        file.write_all(b"\n")?;
    }
    file.flush()
}

fn main() -> io::Result<()> {
    let (port, path) = parse_args();
    let mut file = BufWriter::new(OpenOptions::new().create(true).append(true).open(&path)?);
    let sink = Sink::start_on(port)?;

    let (eof_tx, eof_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        // Whether stdin ends cleanly or with an error, it is the stop signal.
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        drop(eof_tx);
    });

    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening {}", sink.port())?;
    stdout.flush()?;

    while let Err(RecvTimeoutError::Timeout) = eof_rx.recv_timeout(DRAIN_EVERY) {
        write_lines(&mut file, &sink.take_requests())?;
    }
    // Stopping first means the last drain sees everything that was answered.
    sink.stop();
    write_lines(&mut file, &sink.take_requests())
}
