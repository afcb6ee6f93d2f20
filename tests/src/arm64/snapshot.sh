# Prints the arm64 node's state that kdbg must leave as it found it (read by snapshot.rs):
# every entry of the manifests directory and of /var/lib/kdbg except kdbg's bin/ (a header
# line `F PATH MODE SIZE` then the bytes and a newline, `D PATH MODE`, `L PATH TARGET`), then
# `P`, then the command line of each kube-* and dlv process, sorted.
find /etc/kubernetes/manifests /var/lib/kdbg -path /var/lib/kdbg/bin -prune -o -print | sort | while read -r f; do
    if [ -L "$f" ]; then
        echo "L $f $(readlink "$f")"
    elif [ -d "$f" ]; then
        echo "D $f $(stat -c %a "$f")"
    else
        echo "F $f $(stat -c %a "$f") $(wc -c <"$f")"
        cat "$f"
        echo
    fi
done
echo P
for p in /proc/[0-9]*; do
    case "$(readlink "$p/exe" 2>/dev/null)" in
    */kube-* | */dlv) tr '\0' ' ' <"$p/cmdline" && echo ;;
    esac
done | sort
