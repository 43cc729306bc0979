//! Resident memory and CPU time of a process, read from `/proc/<pid>/`.
//!
//! Used for the server under test (`--server-pid`) and for the generator itself (to show it
//! is not the bottleneck). Linux only; a missing process reads as `None`, never an error.

use std::fs;

/// `USER_HZ`: the unit of the CPU times in `/proc/<pid>/stat`, 100 on every Linux ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// Which process to read.
#[derive(Debug, Clone, Copy)]
pub enum Process {
    Pid(u32),
    This,
}

/// One reading of a process's resources.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub rss_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
}

impl Process {
    fn dir(self) -> String {
        match self {
            Process::Pid(pid) => format!("/proc/{pid}"),
            Process::This => "/proc/self".into(),
        }
    }

    pub fn sample(self) -> Sample {
        let dir = self.dir();
        Sample {
            rss_bytes: fs::read_to_string(format!("{dir}/status")).ok().and_then(|s| parse_vm_rss(&s)),
            cpu_seconds: fs::read_to_string(format!("{dir}/stat")).ok().and_then(|s| parse_cpu_seconds(&s)),
        }
    }
}

/// The machine's 1-minute load average, to judge how noisy a run was.
pub fn load_average() -> Option<f64> {
    fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// `VmRSS:   12345 kB` → bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// utime + stime (fields 14 and 15) in seconds; the command name may hold spaces, so fields
/// are counted after its closing parenthesis.
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_status() {
        assert_eq!(parse_vm_rss("Name:\tx\nVmRSS:\t    2048 kB\n"), Some(2048 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn cpu_time_is_utime_plus_stime() {
        let stat = "123 (my proc) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
    }

    #[test]
    fn this_process_can_be_read() {
        let sample = Process::This.sample();
        assert!(sample.rss_bytes.is_some_and(|b| b > 0));
        assert!(sample.cpu_seconds.is_some());
    }
}
