//! The page's structure: lanes, gutter, response arrow, numbering, escaping.

use super::super::{tour, Capture, Timeline, TriggerOutcome};
use super::*;

fn hit(seq: usize, function: &str, value: &str) -> TimedHit {
    TimedHit {
        seq,
        waypoint: seq,
        waypoint_name: format!("w{seq}"),
        function: function.into(),
        goroutine: 9,
        ms: 3,
        recorded_file: "x.go".into(),
        file: None,
        line: 1,
        captures: vec![Capture { expr: "r.URL.Path".into(), value: value.into() }],
    }
}

fn timeline(hits: Vec<TimedHit>) -> Timeline {
    Timeline {
        component: "kube-apiserver".into(),
        node: "n".into(),
        tour: tour::find("kube-apiserver", "healthz").unwrap(),
        resolved: vec![],
        unresolved: vec![],
        trigger: Some(TriggerOutcome { command: "curl".into(), exit_code: Some(0), output: "ok".into() }),
        hits,
        left_set: vec![],
    }
}

#[test]
fn one_lane_per_package_and_escaped_values() {
    let page = html(&timeline(vec![
        hit(1, "net/http.serverHandler.ServeHTTP", "\"/healthz\""),
        hit(2, "net/http.(*ServeMux).ServeHTTP", "<x>"),
        hit(3, "k8s.io/kubernetes/pkg/healthz.(*Handler).ServeHTTP", "y"),
        hit(4, "k8s.io/apiserver/pkg/endpoints/filters.WithAuthentication.func1", "y"),
        hit(5, "k8s.io/apiserver/pkg/server/filters.WithPanicRecovery.func1", "y"),
    ]));
    // client, net/http, pkg/healthz, endpoints/filters, server/filters
    assert_eq!(page.matches("class=\"lane\"").count(), 5, "{page}");
    assert!(page.contains("<title>k8s.io/apiserver/pkg/endpoints/filters</title>"), "{page}");
    assert!(page.contains(">endpoints/filters</text>") && page.contains(">server/filters</text>"), "{page}");
    assert!(page.contains("&lt;x&gt;") && !page.contains("<x>"));
    assert!(page.contains("id=\"sequence\""));
    // Numbered from 1: the first stop is waypoint 1, whose sentence it shows.
    let first = &tour::find("kube-apiserver", "healthz").unwrap().waypoints[0];
    assert!(
        page.contains(&format!("waypoint 1, goroutine 9, +3 ms</span></h3><p>{}</p>", esc(&first.means))),
        "{page}"
    );
    assert!(page.contains("id=\"times\"") && page.contains("Delve stopping and"), "the times are explained");
}

#[test]
fn the_response_is_the_last_arrow_back_to_the_client() {
    let page = html(&timeline(vec![hit(1, "net/http.serverHandler.ServeHTTP", "x")]));
    let hops: Vec<&str> = page.lines().filter(|l| l.starts_with("<g class=\"hop")).collect();
    assert_eq!(hops.len(), 2, "{page}");
    let last = hops[1];
    assert!(last.starts_with("<g class=\"hop response\">") && last.contains(">exit 0: ok</text>"), "{last}");
    // From the net/http lane (x=320) back to the client's (x=120).
    assert!(last.contains("x1=\"320\"") && last.contains("x2=\"120\""), "{last}");
    assert!(page.contains("<div class=\"response\" id=\"response\"><p>exit 0: ok</p><pre>ok</pre>"), "{page}");
}

#[test]
fn labels_sit_above_the_arrowheads() {
    let page = html(&timeline(vec![
        hit(1, "net/http.serverHandler.ServeHTTP", "x"),
        hit(2, "k8s.io/kubernetes/pkg/healthz.(*Handler).ServeHTTP", "y"),
    ]));
    let attr = |l: &str, name: &str| -> usize {
        let at = l.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        l[at..].split('"').next().unwrap().parse().unwrap()
    };
    for l in page.lines().filter(|l| l.starts_with("<g class=\"hop") && l.contains("<line")) {
        // The arrowhead reaches 6 px above the line; the label's baseline is above that.
        assert!(attr(l, "y") + 6 < attr(l, "y1"), "{l}");
    }
}

#[test]
fn the_gutter_is_apart_and_tabs_expand_in_the_code_only() {
    let mut s = String::new();
    source(&mut s, &[(9, "\tif x {".into()), (10, "\t\treturn \"<a>\"".into())], 10);
    assert!(s.contains("<tr><td class=\"ln\">9</td><td class=\"code\">    if x {</td></tr>"), "{s}");
    assert!(s.contains("<tr class=\"here\"><td class=\"ln\">10</td><td class=\"code\">        return &quot;&lt;a&gt;&quot;</td></tr>"), "{s}");
    assert_eq!(expand_tabs("ab\tc\td"), "ab  c   d");
}

#[test]
fn vscode_links_escape_the_path() {
    assert_eq!(vscode_link("/src/k8s/pkg/a.go", 29), "vscode://file/src/k8s/pkg/a.go:29");
    assert_eq!(vscode_link("/my src/#1/100%/a.go", 3), "vscode://file/my%20src/%231/100%25/a.go:3");
}
