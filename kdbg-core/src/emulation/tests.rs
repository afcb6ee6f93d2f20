//! `judge` on signals recorded from real processes (`testdata/`) and on hand-written ones.

use expect_test::expect;

use super::*;

fn judged(signals: &str) -> String {
    judge(signals).map_or("not emulated".to_string(), |e| e.to_string())
}

fn without(text: &str, prefixes: &[&str]) -> String {
    text.lines().filter(|l| !prefixes.iter().any(|p| l.starts_with(p))).map(|l| format!("{l}\n")).collect()
}

#[test]
fn a_process_run_by_qemu_user_is_emulated() {
    let by_pid = judged(include_str!("testdata/qemu-aarch64-static.txt"));
    expect![[r#"
        the node runs its binaries under emulation: process 15425 (`/tmp/e-qemu/root/usr/bin/qemu-aarch64-static`) runs under qemu-aarch64-static (/tmp/e-qemu/root/usr/bin/qemu-aarch64-static is mapped in /proc/15425/maps); Delve cannot set breakpoints in an emulated process (go-delve/delve#2812)
          fix: run the node from an image of the host's own platform (linux/amd64), e.g. the default kind or minikube node image rather than one for another architecture, so its components run natively; then run kdbg again"#]]
    .assert_eq(&by_pid);
    assert_eq!(judged(include_str!("testdata/qemu-aarch64-static-by-name.txt")), by_pid, "found by its name");
}

#[test]
fn a_node_whose_shell_runs_under_qemu_user_is_emulated() {
    expect![[r#"
        the node runs its binaries under emulation: the node's shell (`/tmp/e-qemu/root/usr/bin/qemu-x86_64-static`) runs under qemu-x86_64-static (/tmp/e-qemu/root/usr/bin/qemu-x86_64-static is mapped in /proc/$$/maps); Delve cannot set breakpoints in an emulated process (go-delve/delve#2812)
          fix: run the node from an image of the host's own platform (linux/amd64), e.g. the default kind or minikube node image rather than one for another architecture, so its components run natively; then run kdbg again"#]]
    .assert_eq(&judged(include_str!("testdata/qemu-x86_64-static-shell.txt")));
}

#[test]
fn native_processes_and_foreign_handlers_are_not_emulation() {
    assert_eq!(judged(include_str!("testdata/native.txt")), "not emulated");
    assert_eq!(judged(include_str!("testdata/synthetic-build-host.txt")), "not emulated", "a foreign handler alone");
    assert_eq!(judged("uname=x86_64\nbinfmt_status=absent\n"), "not emulated");
    assert_eq!(judged("uname=x86_64\npid=7\npid_gone=1\n"), "not emulated");
    assert_eq!(judged(""), "not emulated");
    // A 32-bit ARM userland on a 64-bit kernel (Raspberry Pi OS) runs natively.
    let armhf =
        "uname=aarch64\nself_exe=/bin/dash\nself_head=7f 45 4c 46 01 01 01 00 00 00 00 00 00 00 00 00 03 00 28 00\n";
    assert_eq!(judged(armhf), "not emulated");
}

#[test]
fn rosetta_is_emulation_from_its_mapping_its_executable_or_its_handler() {
    let text = include_str!("testdata/synthetic-rosetta.txt");
    expect![[r#"
        the node runs its binaries under emulation: process 1234 (`/run/rosetta/rosetta`) runs under rosetta (/run/rosetta/rosetta is mapped in /proc/1234/maps); Delve cannot set breakpoints in an emulated process (go-delve/delve#2812)
          fix: run the node from an image of the host's own platform (linux/arm64), e.g. the default kind or minikube node image rather than one for another architecture, so its components run natively; then run kdbg again"#]]
    .assert_eq(&judged(text));
    // The maps unreadable: the executable's machine against `uname -m` still tells.
    expect![[r#"
        the node runs its binaries under emulation: process 1234 (`/run/rosetta/rosetta`) is an executable for linux/arm64, but `uname -m` answers x86_64 (linux/amd64): an emulator answers for it; Delve cannot set breakpoints in an emulated process (go-delve/delve#2812)
          fix: run the node from an image of the host's own platform (linux/arm64), e.g. the default kind or minikube node image rather than one for another architecture, so its components run natively; then run kdbg again"#]]
    .assert_eq(&judged(&without(text, &["map=", "self_map="])));
    // Only the handler: the node hands its own x86_64 executables to Rosetta.
    let handler_only = without(text, &["map=", "self_", "pid=", "exe=", "head="]);
    assert!(judged(&handler_only)
        .contains("the binfmt_misc handler rosetta hands the node's own x86_64 executables to /run/rosetta/rosetta"));
    assert!(judged(&handler_only).contains("(linux/arm64)"));
}

#[test]
fn a_binfmt_handler_for_the_nodes_own_machine_is_emulation_without_a_pid() {
    expect![[r#"
        the node runs its binaries under emulation: the binfmt_misc handler qemu-x86_64 hands the node's own x86_64 executables to /usr/libexec/qemu-binfmt/x86_64-binfmt-P; Delve cannot set breakpoints in an emulated process (go-delve/delve#2812)
          fix: run the node from an image of the host's own platform, e.g. the default kind or minikube node image rather than one for another architecture, so its components run natively; then run kdbg again"#]]
    .assert_eq(&judged(include_str!("testdata/synthetic-binfmt-own-arch.txt")));
}

#[test]
fn elf_headers_give_their_machine_in_either_byte_order() {
    let le = hex_bytes("7f 45 4c 46 02 01 01 00 00 00 00 00 00 00 00 00 02 00 b7 00");
    assert_eq!(elf_machine(&le), Some(183));
    let be = hex_bytes("7f 45 4c 46 02 02 01 00 00 00 00 00 00 00 00 00 00 02 00 16");
    assert_eq!(elf_machine(&be), Some(22));
    assert_eq!(elf_machine(&hex_bytes("23 21 2f 62 69 6e")), None, "a script is no ELF");
    assert_eq!(magic_machine("0", "7f454c460201010000000000000000000200b700"), Some(183));
    assert_eq!(magic_machine("0", "a70d0d0a"), None);
}
