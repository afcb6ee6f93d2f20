# kdbg's watchdog on the node: while a debug session runs, it puts the node back by itself when
# the session's lease expires (the workstation is gone) or the node restarted. kdbg writes this
# file, /var/lib/kdbg/restore.sh (what to put back, from the journal) and the lease; everything
# goes again when the session ends. Only /var/log/kdbg keeps what was done.
#
#   watchdog.sh arm PERIOD LEASE   (kdbg) LEASE is "EXPIRES SECONDS" or "none": write the lease,
#                                  start the watchdog and install the boot unit if missing
#   watchdog.sh renew              (kdbg) push the lease's deadline out by its length
#   watchdog.sh tick               the lease expired? then restore (a systemd timer runs this)
#   watchdog.sh loop PERIOD        tick every PERIOD seconds until the session ends (no systemd)
#   watchdog.sh boot               the node restarted during a session: restore now; if that
#                                  fails (a DaemonSet needs the apiserver), retry every 30 s
#   watchdog.sh retry              restore, whatever the lease says (the retries after a boot)
#   watchdog.sh disarm             (kdbg, restore.sh) the session is over: remove all of it
set -u
d=/var/lib/kdbg
logs=/var/log/kdbg
unit=/etc/systemd/system/kdbg-restore.service
wants=/etc/systemd/system/multi-user.target.wants/kdbg-restore.service

say() { mkdir -p "$logs" && echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $*" >> "$logs/node-restore.log"; }
has_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 && command -v systemd-run >/dev/null 2>&1; }
expired() { [ -r "$d/lease" ] && read -r exp _ < "$d/lease" && [ "$(date +%s)" -ge "$exp" ]; }

# restore WHY WAIT: run restore.sh under the node lock; a lock held means a kdbg is at work on
# the node (it renews or restores itself): not now.
restore() {
  exec 9>>"$d/lock"
  if command -v flock >/dev/null 2>&1; then flock -n 9 || return 0; fi
  if [ ! -f "$d/journal.json" ]; then disarm; return 0; fi
  say "restoring the node: $1"
  sh "$d/restore.sh" "$1" "$2" >> "$logs/node-restore.log" 2>&1
  st=$?
  exec 9>&-
  return $st
}

arm() {
  # A new session: the last restore's record is the previous session's.
  [ -f "$d/journal.json" ] || rm -f "$logs/node-restore.json"
  if [ "$2" = none ]; then
    rm -f "$d/lease"
  else
    echo "$2 $1" > "$d/lease.tmp" && mv -f "$d/lease.tmp" "$d/lease" || return 1
  fi
  # Without systemd (or where its boot unit cannot be installed) a restart is not covered.
  if has_systemd && boot_unit; then
    [ "$2" != none ] || systemctl stop kdbg-lease.timer >/dev/null 2>&1
    keep_watch
    echo kdbg-armed systemd
  else
    keep_watch
    echo kdbg-armed process
  fi
}

boot_unit() {
  [ -f "$unit" ] && return 0
  cat > "$unit.tmp" <<'EOF'
[Unit]
Description=kdbg: put back what a debug session changed (the node restarted during it)
ConditionPathExists=/var/lib/kdbg/journal.json
After=local-fs.target
Before=kubelet.service

[Service]
Type=oneshot
ExecStart=/bin/sh /var/lib/kdbg/watchdog.sh boot

[Install]
WantedBy=multi-user.target
EOF
  mv -f "$unit.tmp" "$unit" && mkdir -p "${wants%/*}" && ln -sf "$unit" "$wants" && systemctl daemon-reload && return 0
  rm -f "$unit.tmp" "$unit" "$wants"
  return 1
}

# Starts the watchdog if the session has a lease and none runs (a timer stopped or a loop killed
# by hand comes back with the next renewal): a systemd timer, else (no systemd, or the timer
# cannot be started) a detached loop.
keep_watch() {
  [ -r "$d/lease" ] && read -r _ _ period < "$d/lease" || return 0
  if has_systemd; then
    systemctl is-active --quiet kdbg-lease.timer && return 0
    systemctl reset-failed kdbg-lease.timer kdbg-lease.service >/dev/null 2>&1
    systemd-run --quiet --unit=kdbg-lease --description="kdbg: the debug session's lease" \
      --on-active="$period" --on-unit-active="$period" --timer-property=AccuracySec=1s \
      /bin/sh "$d/watchdog.sh" tick && return 0
  fi
  if ! running; then
    : > "$d/watchdog.running"
    setsid sh "$d/watchdog.sh" loop "$period" </dev/null >/dev/null 2>&1 &
  fi
}

# A loop holds watchdog.running's lock for as long as it runs.
running() {
  command -v flock >/dev/null 2>&1 || return 1
  ! flock -n "$d/watchdog.running" true
}

loop() {
  exec 8>>"$d/watchdog.running"
  if command -v flock >/dev/null 2>&1; then flock -n 8 || exit 0; fi
  while [ -f "$d/journal.json" ]; do
    # After a failed restore (logged), try again less often.
    # (fd 8, the loop's lock, is not handed down: a killed loop must not seem to run on.)
    if tick 8>&-; then sleep "$1" 8>&-; else sleep $(( $1 * 10 )) 8>&-; fi
  done
  disarm
}

tick() {
  if [ ! -f "$d/journal.json" ]; then disarm; return 0; fi
  expired || return 0
  restore "the lease expired" 120
}

renew() {
  if has_systemd; then echo "kdbg-watchdog systemd"; else echo "kdbg-watchdog process"; fi
  [ -r "$d/lease" ] && read -r was secs period < "$d/lease" || return 0
  exp=$(( $(date +%s) + secs ))
  echo "$exp $secs $period" > "$d/lease.tmp" && mv -f "$d/lease.tmp" "$d/lease" || return 1
  echo "kdbg-lease $exp $secs $was"
  keep_watch
}

disarm() {
  rm -f "$d/journal.json" "$d/restore.sh" "$d/lease" "$d/lease.tmp" "$d/watchdog.running"
  if [ -f "$unit" ] || [ -L "$wants" ]; then
    rm -f "$wants" "$unit" "$unit.tmp"
    systemctl daemon-reload >/dev/null 2>&1
  fi
  if has_systemd; then
    systemctl stop kdbg-lease.timer >/dev/null 2>&1
    systemctl reset-failed kdbg-lease.timer kdbg-lease.service >/dev/null 2>&1
  fi
  rm -f "$d/watchdog.sh"
  true
}

case "${1:-}" in
  arm) arm "$2" "$3" ;;
  renew) renew ;;
  tick) tick ;;
  loop) loop "$2" ;;
  boot)
    restore "the node restarted" 0 && exit 0
    say "the restore at boot did not finish: trying again every 30 s"
    systemd-run --quiet --unit=kdbg-lease --description="kdbg: put the node back after its restart" \
      --on-active=30 --on-unit-active=30 --timer-property=AccuracySec=1s /bin/sh "$d/watchdog.sh" retry
    ;;
  retry) restore "the node restarted" 120 ;;
  disarm) disarm ;;
  *) echo "usage: watchdog.sh arm|renew|tick|loop|boot|disarm" >&2; exit 2 ;;
esac
