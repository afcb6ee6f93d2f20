#!/bin/sh
# kdbg-pod-runner: the arm64 test node's stand-in for the kubelet's static pods. Every 0.2 s it
# runs each non-hidden regular file of /etc/kubernetes/manifests as its first container's
# command + args (+ env), in a session of its own, output appended to /var/log/pods/<file>.log;
# starts it again when it exits; stops it (SIGTERM to its process group, SIGKILL after 5 s)
# when the file disappears or changes. State: /run/kdbg-pods/<file>.pid and .sum.
# Busybox sh: this is the whole runner (the namespace node's is tests/src/runner.rs).
exec >>/var/log/kdbg-pod-runner.log 2>&1
M=/etc/kubernetes/manifests
S=/run/kdbg-pods
L=/var/log/pods
PODPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p "$S" "$L"

alive() {
    [ -n "$1" ] && [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"
}

stop() {
    pid=$(cat "$S/$1.pid")
    echo "runner: stopping $1 (pid $pid)"
    kill -TERM "-$pid" 2>/dev/null
    i=0
    while alive "$pid" && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "-$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -f "$S/$1.pid" "$S/$1.sum" "$S/$1.dead"
}

start() {
    local key=$1 file=$2 sum=$3 words
    words=$(awk -f /usr/local/share/kdbg/argv.awk "$file")
    if [ -z "$words" ]; then
        [ -e "$S/$key.bad" ] || echo "runner: $file has no command; skipped"
        echo "$sum" >"$S/$key.bad"
        return
    fi
    eval "set -- $words"
    setsid env -i "PATH=$PODPATH" "$@" </dev/null >>"$L/$key.log" 2>&1 &
    echo "$!" >"$S/$key.pid"
    echo "$sum" >"$S/$key.sum"
    echo "runner: started $key (pid $!)"
}

while :; do
    for p in "$S"/*.pid; do
        [ -e "$p" ] || continue
        key=${p##*/}
        key=${key%.pid}
        if [ ! -f "$M/$key" ] || [ "$(md5sum <"$M/$key")" != "$(cat "$S/$key.sum")" ]; then
            stop "$key"
        fi
    done
    for f in "$M"/*; do
        [ -f "$f" ] || continue
        key=${f##*/}
        sum=$(md5sum <"$f")
        if [ -e "$S/$key.pid" ]; then
            pid=$(cat "$S/$key.pid")
            alive "$pid" && continue
            # Exited: restart after about a second, as the kubelet's back-off would.
            if [ ! -e "$S/$key.dead" ]; then
                wait "$pid" 2>/dev/null
                echo "runner: $key (pid $pid) exited"
                date +%s >"$S/$key.dead"
                continue
            fi
            [ "$(date +%s)" -gt "$(cat "$S/$key.dead")" ] || continue
            rm -f "$S/$key.dead"
        fi
        [ -e "$S/$key.bad" ] && [ "$(cat "$S/$key.bad")" = "$sum" ] && continue
        start "$key" "$f" "$sum"
    done
    sleep 0.2
done
