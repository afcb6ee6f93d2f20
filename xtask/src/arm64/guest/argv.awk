# Prints the environment and argv of the first container of a static pod manifest (the format
# kubeadm and tests/src/lab.rs write: `command:`/`args:` lists, `env:` name/value pairs) as
# single-quoted shell words: `'K=V' ... 'argv0' 'arg1' ...`. Nothing when there is no command.
function q(s) { gsub(/'/, "'\\''", s); return "'" s "'" }
function unquote(s) { if (s ~ /^".*"$/) s = substr(s, 2, length(s) - 2); return s }
/^  - / { containers++ }
containers != 1 { mode = ""; next }
/^(  - |    )command:/ { mode = "argv"; next }
/^    args:/ { mode = "argv"; next }
/^    env:/ { mode = "env"; next }
mode == "argv" && /^    - / { sub(/^    - /, ""); argv = argv " " q(unquote($0)); next }
mode == "env" && /^    - name: / { sub(/^    - name: /, ""); name = unquote($0); next }
mode == "env" && /^      value: / { sub(/^      value: /, ""); env = env " " q(name "=" unquote($0)); next }
{ mode = "" }
END { if (argv != "") print env argv }
