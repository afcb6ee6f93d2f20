//! The report's sequence diagram: inline SVG (`id="sequence"`), one lane per Go package
//! (`class="lane"`, named by the shortest path suffix no other lane shares, the full path in its
//! `<title>`), one arrow per stop (`class="hop"`, its label above the arrowhead) and the trigger's
//! result as the last arrow back to the client (`class="hop response"`).

use std::fmt::Write;

use super::esc;
use crate::trace::{TimedHit, Timeline, TriggerOutcome};

const LANE_W: usize = 200;
const ROW_H: usize = 40;
const TOP: usize = 70;
/// How far a label's baseline sits above its arrow: clear of the arrowhead (half height 6).
pub(super) const LABEL_LIFT: usize = 9;

/// The client's lane, then one per package in order of first hit.
pub(super) fn lanes(hits: &[TimedHit]) -> Vec<&str> {
    let mut lanes: Vec<&str> = vec!["client"];
    for h in hits {
        if !lanes.contains(&h.package()) {
            lanes.push(h.package());
        }
    }
    lanes
}

/// The shortest `/`-suffix of `lane` that no other of `lanes` ends with as many segments:
/// `endpoints/filters` and `server/filters` stay apart, `healthz` stands alone.
pub(super) fn short_name<'a>(lane: &'a str, lanes: &[&str]) -> &'a str {
    let segments = lane.split('/').count();
    for k in 1..segments {
        let suffix = last_segments(lane, k);
        if !lanes.iter().any(|o| *o != lane && last_segments(o, k) == suffix) {
            return suffix;
        }
    }
    lane
}

fn last_segments(path: &str, k: usize) -> &str {
    let mut start = path.len();
    for _ in 0..k {
        match path[..start].rfind('/') {
            Some(i) => start = i,
            None => return path,
        }
    }
    &path[start + 1..]
}

/// The response's label: `exit 0: ok` (the status and the first bytes of what it printed).
pub(super) fn response_label(tr: &TriggerOutcome) -> String {
    let status = tr.exit_code.map_or("still running".to_string(), |c| format!("exit {c}"));
    let first: String = tr.output.trim().lines().next().unwrap_or("").chars().take(40).collect();
    if first.is_empty() {
        status
    } else {
        format!("{status}: {first}")
    }
}

pub(super) fn svg(s: &mut String, t: &Timeline) {
    let lanes = lanes(&t.hits);
    let rows = t.hits.len() + usize::from(t.trigger.is_some());
    let width = lanes.len() * LANE_W + 40;
    let height = TOP + (rows + 1) * ROW_H;
    let _ = writeln!(
        s,
        "<svg id=\"sequence\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    );
    s.push_str("<defs><marker id=\"arrow\" markerWidth=\"8\" markerHeight=\"8\" refX=\"7\" refY=\"4\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#1f5fa8\"/></marker></defs>\n");
    for (i, lane) in lanes.iter().enumerate() {
        let _ = writeln!(
            s,
            "<g class=\"lane\" data-package=\"{p}\"><title>{p}</title><rect x=\"{}\" y=\"10\" width=\"{}\" height=\"36\" rx=\"6\"/><text x=\"{cx}\" y=\"33\" text-anchor=\"middle\">{}</text><line x1=\"{cx}\" y1=\"46\" x2=\"{cx}\" y2=\"{}\"/></g>",
            x(i) - LANE_W / 2 + 8,
            LANE_W - 16,
            esc(short_name(lane, &lanes)),
            height - 10,
            p = esc(lane),
            cx = x(i),
        );
    }
    let mut from = 0;
    for (n, h) in t.hits.iter().enumerate() {
        let to = lanes.iter().position(|l| *l == h.package()).unwrap_or(0);
        let label = format!("{}. {} (g{}, +{} ms)", h.seq, h.waypoint_name, h.goroutine, h.ms);
        hop(s, "hop", from, to, TOP + n * ROW_H + ROW_H / 2, &label);
        from = to;
    }
    if let Some(tr) = &t.trigger {
        hop(s, "hop response", from, 0, TOP + t.hits.len() * ROW_H + ROW_H / 2, &response_label(tr));
    }
    s.push_str("</svg>\n");
}

/// The centre of lane `i`.
fn x(i: usize) -> usize {
    20 + i * LANE_W + LANE_W / 2
}

/// One arrow from lane `from` to lane `to` at height `y`, labelled above it (a loop to itself
/// when they are the same lane, labelled beside it).
fn hop(s: &mut String, class: &str, from: usize, to: usize, y: usize, label: &str) {
    let l = esc(label);
    if to == from {
        let (x0, y0) = (x(to), y - 7);
        let _ = writeln!(
            s,
            "<g class=\"{class}\"><path d=\"M{x0},{y0} h30 v14 h-28\" fill=\"none\" marker-end=\"url(#arrow)\"/><text x=\"{}\" y=\"{}\">{l}</text></g>",
            x0 + 36,
            y0 + 4
        );
    } else {
        // Anchored at the tail, so the text runs away from the arrowhead.
        let (anchor, tx) = if to > from { ("start", x(from) + 6) } else { ("end", x(from) - 6) };
        let _ = writeln!(
            s,
            "<g class=\"{class}\"><line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" marker-end=\"url(#arrow)\"/><text x=\"{tx}\" y=\"{}\" text-anchor=\"{anchor}\">{l}</text></g>",
            x(from),
            x(to),
            y - LABEL_LIFT
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_are_named_by_the_shortest_unique_suffix() {
        let lanes = [
            "client",
            "k8s.io/kubernetes/vendor/k8s.io/apiserver/pkg/endpoints/filters",
            "k8s.io/kubernetes/vendor/k8s.io/apiserver/pkg/server/filters",
            "k8s.io/kubernetes/pkg/healthz",
            "net/http",
            "main",
        ];
        let names: Vec<&str> = lanes.iter().map(|l| short_name(l, &lanes)).collect();
        assert_eq!(names, ["client", "endpoints/filters", "server/filters", "healthz", "http", "main"]);
        let same_tail = ["a/x/filters", "b/x/filters"];
        assert_eq!(short_name(same_tail[0], &same_tail), "a/x/filters");
    }

    #[test]
    fn the_response_label_has_the_status_and_first_bytes() {
        let tr = |code, out: &str| TriggerOutcome { command: "c".into(), exit_code: code, output: out.into() };
        assert_eq!(response_label(&tr(Some(0), "ok\nmore")), "exit 0: ok");
        assert_eq!(response_label(&tr(Some(7), "")), "exit 7");
        assert_eq!(response_label(&tr(None, "x")), "still running: x");
    }
}
