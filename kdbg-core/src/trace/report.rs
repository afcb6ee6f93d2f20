//! `kdbg trace --report FILE.html`: one self-contained page (no script, no external resource)
//! with a sequence diagram of the hits (inline SVG, one lane per Go package, `id="sequence"`,
//! lanes `class="lane"`), each stop's source lines read from the tree, and `vscode://file/` links.

use std::fmt::Write;

use camino::Utf8Path;

use super::{TimedHit, Timeline};

const LANE_W: usize = 190;
const ROW_H: usize = 34;
const TOP: usize = 70;

/// The page for `t`.
pub fn html(t: &Timeline) -> String {
    let mut lanes: Vec<&str> = vec!["client"];
    for h in &t.hits {
        if !lanes.contains(&h.package()) {
            lanes.push(h.package());
        }
    }
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
    diagram(&mut s, t, &lanes);
    s.push_str("<h2>Stops</h2>\n<ol class=\"stops\">\n");
    for h in &t.hits {
        stop(&mut s, t, h);
    }
    s.push_str("</ol>\n");
    if !t.unresolved.is_empty() {
        s.push_str("<h2>Not in this binary</h2>\n<ul>\n");
        for u in &t.unresolved {
            let _ = writeln!(
                s,
                "<li>{}. {}: {} (<code>{}</code>)</li>",
                u.waypoint + 1,
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

fn diagram(s: &mut String, t: &Timeline, lanes: &[&str]) {
    let width = lanes.len() * LANE_W + 40;
    let height = TOP + (t.hits.len() + 1) * ROW_H;
    let x = |i: usize| 20 + i * LANE_W + LANE_W / 2;
    let _ = writeln!(
        s,
        "<svg id=\"sequence\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    );
    s.push_str("<defs><marker id=\"arrow\" markerWidth=\"8\" markerHeight=\"8\" refX=\"7\" refY=\"4\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#1f5fa8\"/></marker></defs>\n");
    for (i, lane) in lanes.iter().enumerate() {
        let short = lane.rsplit('/').next().unwrap_or(lane);
        let _ = writeln!(
            s,
            "<g class=\"lane\" data-package=\"{}\"><title>{}</title><rect x=\"{}\" y=\"10\" width=\"{}\" height=\"36\" rx=\"6\"/><text x=\"{}\" y=\"33\" text-anchor=\"middle\">{}</text><line x1=\"{}\" y1=\"46\" x2=\"{}\" y2=\"{}\"/></g>",
            esc(lane),
            esc(lane),
            x(i) - LANE_W / 2 + 8,
            LANE_W - 16,
            x(i),
            esc(short),
            x(i),
            x(i),
            height - 10
        );
    }
    let mut from = 0;
    for (n, h) in t.hits.iter().enumerate() {
        let to = lanes.iter().position(|l| *l == h.package()).unwrap_or(0);
        let y = TOP + n * ROW_H + ROW_H / 2;
        let label = format!("{}. {} (g{}, +{} ms)", h.seq, h.waypoint_name, h.goroutine, h.ms);
        if to == from {
            let _ = writeln!(
                s,
                "<g class=\"hop\"><path d=\"M{x0},{y0} h30 v14 h-28\" fill=\"none\" marker-end=\"url(#arrow)\"/><text x=\"{tx}\" y=\"{y0}\">{l}</text></g>",
                x0 = x(to),
                y0 = y - 7,
                tx = x(to) + 36,
                l = esc(&label)
            );
        } else {
            let _ = writeln!(
                s,
                "<g class=\"hop\"><line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" marker-end=\"url(#arrow)\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>",
                x(from),
                x(to),
                (x(from) + x(to)) / 2,
                y - 5,
                esc(&label)
            );
        }
        from = to;
    }
    s.push_str("</svg>\n");
}

fn stop(s: &mut String, t: &Timeline, h: &TimedHit) {
    let means = t.tour.waypoints.get(h.waypoint).map(|w| w.means.as_str()).unwrap_or("");
    let _ = write!(
        s,
        "<li class=\"stop\"><h3>{}. {} <span class=\"meta\">goroutine {}, +{} ms</span></h3><p>{}</p><p><code>{}</code> ",
        h.seq,
        esc(&h.waypoint_name),
        h.goroutine,
        h.ms,
        esc(means),
        esc(&h.function)
    );
    let file = h.shown_file();
    if file.starts_with('/') {
        let _ = write!(s, "<a href=\"vscode://file{}:{}\">{}:{}</a>", esc(file), h.line, esc(file), h.line);
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
        s.push_str("<pre class=\"source\">");
        for (n, text) in lines {
            let class = if n == h.line { " class=\"here\"" } else { "" };
            let _ = writeln!(s, "<span{class}>{n:>5}  {}</span>", esc(&text));
        }
        s.push_str("</pre>\n");
    }
    s.push_str("</li>\n");
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
.hop line,.hop path{stroke:#1f5fa8;stroke-width:1.5}.hop text{font-size:11px}\
.meta{font-weight:normal;color:#666;font-size:80%}ol.stops{list-style:none;padding-left:0}\
pre.source{background:#f4f4f4;padding:.5em}pre.source .here{background:#fff3b0}\
table.captures td{padding:0 1em 0 0}";

#[cfg(test)]
mod tests {
    use super::super::{tour, Capture, Timeline};
    use super::*;

    #[test]
    fn one_lane_per_package_and_escaped_values() {
        let tour = tour::find("kube-apiserver", "healthz").unwrap();
        let hit = |seq: usize, function: &str, value: &str| TimedHit {
            seq,
            waypoint: seq - 1,
            waypoint_name: format!("w{seq}"),
            function: function.into(),
            goroutine: 9,
            ms: 3,
            recorded_file: "x.go".into(),
            file: None,
            line: 1,
            captures: vec![Capture { expr: "r.URL.Path".into(), value: value.into() }],
        };
        let t = Timeline {
            component: "kube-apiserver".into(),
            node: "n".into(),
            tour,
            resolved: vec![],
            unresolved: vec![],
            trigger: None,
            hits: vec![
                hit(1, "net/http.serverHandler.ServeHTTP", "\"/healthz\""),
                hit(2, "net/http.(*ServeMux).ServeHTTP", "<x>"),
                hit(3, "k8s.io/kubernetes/pkg/healthz.(*Handler).ServeHTTP", "y"),
            ],
            left_set: vec![],
        };
        let page = html(&t);
        // client, net/http, pkg/healthz
        assert_eq!(page.matches("class=\"lane\"").count(), 3, "{page}");
        assert!(page.contains("&lt;x&gt;") && !page.contains("<x>"));
        assert!(page.contains("id=\"sequence\""));
    }
}
