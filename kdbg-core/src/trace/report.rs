//! `kdbg trace --report FILE.html`: one self-contained page (no script, no external resource)
//! with a sequence diagram of the hits ([`diagram`]), a note on what the times measure, each
//! stop's source lines read from the tree (a line-number gutter apart from the code, tabs expanded
//! in the code), the trigger's response, and `vscode://file/` links (the path percent-encoded).
//! Waypoints are numbered from 1, as in the terminal and `--json`.

mod diagram;

use std::fmt::Write;

use camino::Utf8Path;

use super::{TimedHit, Timeline};

/// Columns a tab advances the code to (from the code's own start, not the gutter's).
const TAB: usize = 4;

/// What the `+ms` times are, on the page.
pub const TIMES_NOTE: &str =
    "+ms is the time since the trigger started at which kdbg saw each stop. Every stop halts the \
     whole program while Delve reads the captures and continues it, so these times mostly measure Delve stopping and \
     resuming (milliseconds a stop), not the component's own latency; they give the order, not a profile.";

/// The page for `t`.
pub fn html(t: &Timeline) -> String {
    let mut s = String::new();
    let title = format!("kdbg trace: {} {} on {}", t.component, t.tour.name, t.node);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{CSS}</style></head><body>\n",
        esc(&title)
    );
    let _ = write!(s, "<h1>{}</h1>\n<p class=\"story\">{}</p>\n", esc(&title), esc(&t.tour.story));
    if let Some(tr) = &t.trigger {
        let code = tr.exit_code.map_or("still running".to_string(), |c| format!("exit {c}"));
        let _ = writeln!(s, "<p>trigger: <code>{}</code> ({code})</p>", esc(&tr.command));
    }
    diagram::svg(&mut s, t);
    let _ = writeln!(s, "<p class=\"note\" id=\"times\">{}</p>", esc(TIMES_NOTE));
    s.push_str("<h2>Stops</h2>\n<ol class=\"stops\">\n");
    for h in &t.hits {
        stop(&mut s, t, h);
    }
    s.push_str("</ol>\n");
    if let Some(tr) = &t.trigger {
        let output: String = tr.output.chars().take(2000).collect();
        let _ = writeln!(
            s,
            "<h2>Response</h2>\n<div class=\"response\" id=\"response\"><p>{}</p><pre>{}</pre></div>",
            esc(&diagram::response_label(tr)),
            esc(&output)
        );
    }
    if !t.unresolved.is_empty() {
        s.push_str("<h2>Not in this binary</h2>\n<ul>\n");
        for u in &t.unresolved {
            let _ = writeln!(
                s,
                "<li>{}. {}: {} (<code>{}</code>)</li>",
                u.waypoint,
                esc(&u.name),
                esc(&u.why),
                esc(&u.patterns.join(" | "))
            );
        }
        s.push_str("</ul>\n");
    }
    s.push_str("</body></html>\n");
    s
}

fn stop(s: &mut String, t: &Timeline, h: &TimedHit) {
    let means = h.waypoint_of(&t.tour).map(|w| w.means.as_str()).unwrap_or("");
    let _ = write!(
        s,
        "<li class=\"stop\"><h3>{}. {} <span class=\"meta\">waypoint {}, goroutine {}, +{} ms</span></h3><p>{}</p><p><code>{}</code> ",
        h.seq,
        esc(&h.waypoint_name),
        h.waypoint,
        h.goroutine,
        h.ms,
        esc(means),
        esc(&h.function)
    );
    let file = h.shown_file();
    if file.starts_with('/') {
        let _ = write!(s, "<a href=\"{}\">{}:{}</a>", esc(&vscode_link(file, h.line)), esc(file), h.line);
    } else {
        let _ = write!(s, "{}:{}", esc(file), h.line);
    }
    s.push_str("</p>\n");
    if !h.captures.is_empty() {
        s.push_str("<table class=\"captures\">");
        for c in &h.captures {
            let _ = write!(s, "<tr><td><code>{}</code></td><td><code>{}</code></td></tr>", esc(&c.expr), esc(&c.value));
        }
        s.push_str("</table>\n");
    }
    if let Some(lines) = source_lines(Utf8Path::new(file), h.line) {
        source(s, &lines, h.line);
    }
    s.push_str("</li>\n");
}

/// The source lines as a table: the gutter (`td.ln`) apart from the code (`td.code`).
fn source(s: &mut String, lines: &[(u32, String)], here: u32) {
    s.push_str("<table class=\"source\">");
    for (n, text) in lines {
        let class = if *n == here { " class=\"here\"" } else { "" };
        let _ =
            write!(s, "<tr{class}><td class=\"ln\">{n}</td><td class=\"code\">{}</td></tr>", esc(&expand_tabs(text)));
    }
    s.push_str("</table>\n");
}

/// `line` with each tab replaced by the spaces up to the next multiple of [`TAB`] columns.
pub(crate) fn expand_tabs(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut col = 0;
    for c in line.chars() {
        if c == '\t' {
            let n = TAB - col % TAB;
            out.extend(std::iter::repeat_n(' ', n));
            col += n;
        } else {
            out.push(c);
            col += 1;
        }
    }
    out
}

/// `vscode://file/<path>:<line>` with the path percent-encoded (`#`, `%`, spaces, non-ASCII).
pub(crate) fn vscode_link(file: &str, line: u32) -> String {
    let mut s = String::from("vscode://file");
    for b in file.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            s.push(b as char);
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    let _ = write!(s, ":{line}");
    s
}

/// Lines `line-2 ..= line+3` of `file`, if it can be read.
pub(crate) fn source_lines(file: &Utf8Path, line: u32) -> Option<Vec<(u32, String)>> {
    let text = std::fs::read_to_string(file).ok()?;
    let first = line.saturating_sub(2).max(1);
    let out: Vec<(u32, String)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i as u32 + 1, l.to_string()))
        .filter(|(n, _)| *n >= first && *n <= line + 3)
        .collect();
    (!out.is_empty()).then_some(out)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const CSS: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
svg{border:1px solid #ddd;background:#fcfcfc}\
.lane rect{fill:#e8f0fb;stroke:#1f5fa8}.lane text{font-size:12px}\
.lane line{stroke:#aaa;stroke-dasharray:4 4}\
.hop line,.hop path{stroke:#1f5fa8;stroke-width:1.5}\
.hop text{font-size:11px;paint-order:stroke;stroke:#fcfcfc;stroke-width:3px}\
.response line{stroke-dasharray:6 3}.note{color:#555;font-size:90%;max-width:60em}\
.meta{font-weight:normal;color:#666;font-size:80%}ol.stops{list-style:none;padding-left:0}\
table.source{background:#f4f4f4;border-collapse:collapse;font-family:monospace;width:100%}\
table.source td{padding:0 .5em;white-space:pre;vertical-align:top}\
table.source td.ln{color:#888;text-align:right;user-select:none;border-right:1px solid #ccc;width:4em}\
table.source tr.here{background:#fff3b0}\
.response pre{background:#f4f4f4;padding:.5em}\
table.captures td{padding:0 1em 0 0}";

#[cfg(test)]
mod tests;
