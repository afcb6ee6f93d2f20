//! The lease's words and the node's scripts, without a node.

use super::*;

#[test]
fn leases_read_as_durations_or_none() {
    assert_eq!(parse("4h").unwrap(), Some(Duration::from_secs(4 * 3600)));
    assert_eq!(parse("1h30m").unwrap(), Some(Duration::from_secs(5400)));
    assert_eq!(parse("45s").unwrap(), Some(Duration::from_secs(45)));
    assert_eq!(parse("2d").unwrap(), Some(Duration::from_secs(2 * 86400)));
    assert_eq!(parse("none").unwrap(), None);
    for bad in ["", "0s", "4", "h", "4x", "-1h", "1.5h"] {
        assert!(parse(bad).is_err(), "{bad}");
    }
    assert_eq!(human(5400), "1h30m");
    assert_eq!(human(14400), "4h");
    assert_eq!(human(0), "0s");
}

#[test]
fn the_watchdog_parses_as_sh_and_its_period_follows_the_lease() {
    let out = std::process::Command::new("sh").args(["-n", "-c", WATCHDOG]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lease = |seconds| Lease { seconds, expires_at: 0, renewed_at: 0 };
    assert_eq!((period(&lease(4)), period(&lease(60)), period(&lease(14400))), (1, 15, 30));
}

#[test]
fn renew_answers_are_read() {
    let s = parse_standing("kdbg-watchdog process\nkdbg-lease 1700000100 100 1700000050\n");
    assert_eq!(s.deadline, Some(Deadline { expires_at: 1_700_000_100, seconds: 100, was: Some(1_700_000_050) }));
    assert_eq!(s.watchdog, Some(Watchdog::Process));
    assert_eq!(parse_standing(""), Standing::default());
    assert_eq!(when(&Deadline { expires_at: 3600 + 120, seconds: 1, was: None }, 3600), "in 2m (at 01:02 UTC)");
}
