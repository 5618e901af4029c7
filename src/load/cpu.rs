//! The generator's own CPU time, read per thread from /proc so that a bundled server in the
//! same process does not count. Linux only; elsewhere the figure is simply absent.

/// Kernel clock ticks per second for /proc times (USER_HZ, 100 on every mainstream Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime of every thread whose name starts with `prefix`, in clock ticks.
pub fn thread_ticks(prefix: &str) -> Option<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = entry.ok()?.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !name.trim().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // Fields after the parenthesised name: state is the first, utime the 12th, stime the 13th.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        total += fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    }
    Some(total)
}

pub fn seconds(ticks: u64) -> f64 {
    ticks as f64 / TICKS_PER_SECOND
}
