//! Tours as data: `kdbg-core/tours/*.json`, compiled into kdbg, one file per tour.
//!
//! A waypoint names functions by their Go symbol without the module's vendor prefix
//! (`k8s.io/apiserver/pkg/storage/etcd3.(*store).Create`); [`matches`] accepts the symbol itself
//! and any symbol that ends with it after a `/`, so one tour fits a GOPATH build of v1.20
//! (`k8s.io/kubernetes/vendor/k8s.io/apiserver/...`), a module build and later versions. Several
//! `functions` are alternatives (a function renamed between versions): every one found is traced.

mod check;
mod load;

pub use load::{parse, read, Catalogue, Listed, Origin, TourFileError};
use serde::{Deserialize, Serialize};

/// The tours shipped with kdbg.
const SOURCES: &[(&str, &str)] = &[
    ("apiserver-request.json", include_str!("../../tours/apiserver-request.json")),
    ("apiserver-watch.json", include_str!("../../tours/apiserver-watch.json")),
    ("scheduler-schedule.json", include_str!("../../tours/scheduler-schedule.json")),
    ("controller-manager-rollout.json", include_str!("../../tours/controller-manager-rollout.json")),
    ("kubelet-pod-start.json", include_str!("../../tours/kubelet-pod-start.json")),
    ("healthz.json", include_str!("../../tours/healthz.json")),
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tour {
    pub name: String,
    /// The component's canonical name (`kube-apiserver`).
    pub component: String,
    /// One line: what happens along the tour.
    pub story: String,
    pub waypoints: Vec<Waypoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Waypoint {
    pub name: String,
    /// Alternatives, see the module doc.
    pub functions: Vec<String>,
    /// One sentence: what this step means.
    pub means: String,
    /// Delve expressions evaluated at each hit.
    #[serde(default)]
    pub capture: Vec<String>,
    /// A Delve condition: only hits where it holds are recorded (keeps a busy component quiet).
    #[serde(default)]
    pub cond: Option<String>,
}

/// Every shipped tour, in catalogue order.
pub fn all() -> Vec<Tour> {
    SOURCES
        .iter()
        .map(|(file, text)| serde_json::from_str(text).unwrap_or_else(|e| panic!("tours/{file} is not a tour: {e}")))
        .collect()
}

/// The tour `name` of `component` (canonical name).
pub fn find(component: &str, name: &str) -> Option<Tour> {
    all().into_iter().find(|t| t.component == component && t.name == name)
}

/// A Go regular expression that finds `pattern`'s candidates in Delve's function list.
pub(crate) fn filter(pattern: &str) -> String {
    let mut re = String::new();
    for c in pattern.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            re.push('\\');
        }
        re.push(c);
    }
    re.push('$');
    re
}

/// Whether the symbol `name` is the function `pattern` stands for (see the module doc).
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    name == pattern || name.strip_suffix(pattern).is_some_and(|head| head.ends_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tour_parses_and_names_a_known_component() {
        let tours = all();
        assert!(tours.len() >= 6);
        for t in &tours {
            let c = crate::component::Component::lookup(&t.component).unwrap();
            assert_eq!(c.name, t.component);
            assert!(!t.waypoints.is_empty() && t.waypoints.iter().all(|w| !w.functions.is_empty()), "{}", t.name);
        }
        assert!(find("kube-apiserver", "request").is_some());
        assert!(find("kube-scheduler", "request").is_none());
    }

    #[test]
    fn patterns_match_vendored_symbols_only_at_a_path_boundary() {
        let p = "k8s.io/apiserver/pkg/storage/etcd3.(*store).Create";
        assert!(matches(p, p));
        assert!(matches(p, "k8s.io/kubernetes/vendor/k8s.io/apiserver/pkg/storage/etcd3.(*store).Create"));
        assert!(!matches(p, "example.com/xk8s.io/apiserver/pkg/storage/etcd3.(*store).Create"));
        assert!(!matches(p, "k8s.io/apiserver/pkg/storage/etcd3.(*store).Create.func1"));
        assert_eq!(filter("a.(*b).C"), "a\\.\\(\\*b\\)\\.C$");
    }
}
