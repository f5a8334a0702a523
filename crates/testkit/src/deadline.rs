//! What keeps a bench from rotting unnoticed: `--quick` (seconds, tiny sizes: what `.ci/run` runs, so
//! a bench that breaks fails CI), and a watchdog that ends the run, failed, with what it was doing when
//! its deadline passed — a bench fails, it never hangs.

use std::sync::Mutex;
use std::time::Duration;

/// What the bench is doing (the watchdog says it).
static PHASE: Mutex<&str> = Mutex::new("starting");

/// Whether the bench runs in its quick mode (`cargo bench --bench X -- --quick`).
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
}

/// Says what the bench does now.
pub fn phase(p: &'static str) {
    if let Ok(mut g) = PHASE.lock() {
        *g = p;
    }
    eprintln!("… {p}");
}

/// Ends the process, failed, once `limit` has passed; `cleanup` runs first (children to kill).
pub fn watchdog(name: &'static str, limit: Duration, cleanup: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        let at = PHASE.lock().map(|p| *p).unwrap_or("?");
        eprintln!("{name}: FAILED: the bench's deadline of {limit:?} passed while {at}");
        cleanup();
        // Whatever the bench started (a service, Orthanc, a classroom) ends with it.
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-P", &std::process::id().to_string()])
            .status();
        std::process::exit(1);
    });
}
