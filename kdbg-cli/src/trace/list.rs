//! `kdbg trace --list`: every tour with where it came from (`shipped`, the user's file) and, for
//! components under `kdbg debug` on the target, how many of its waypoints resolve in the running
//! binary, naming those that do not; the user's files that are not tours are named with the fix.

use std::collections::BTreeMap;

use kdbg_core::trace::{self, tour::Catalogue};
use serde_json::json;

use super::TraceArgs;
use crate::config::{state_dir, JSON_SCHEMA};
use crate::out::outln;

/// Per tour (its index in the catalogue), the waypoints that do not resolve: `(number, name)`.
type Missing = BTreeMap<usize, Vec<(usize, String)>>;

pub(super) fn list(args: &TraceArgs) -> anyhow::Result<()> {
    let dir = kdbg_core::cache::remote::settings::tours_dir();
    let catalogue = Catalogue::load(dir.as_deref(), args.tour_file.as_deref())?;
    let missing = resolve(args, &catalogue);
    if args.json {
        print_json(&catalogue, &missing, dir.as_ref());
        return Ok(());
    }
    let mut rows = vec![["TOUR", "COMPONENT", "RESOLVE", "SOURCE", "STORY"].map(String::from)];
    for (i, l) in catalogue.tours.iter().enumerate() {
        let n = l.tour.waypoints.len();
        let resolve = missing.get(&i).map_or(format!("-/{n}"), |m| format!("{}/{n}", n - m.len()));
        let source = match &l.overrides {
            Some(old) => format!("{} (overrides {old})", l.origin),
            None => l.origin.to_string(),
        };
        rows.push([l.tour.name.clone(), l.tour.component.clone(), resolve, source, l.tour.story.clone()]);
    }
    for (i, line) in crate::render::columns(&rows, &[], &[]).iter().enumerate() {
        outln!("{line}");
        if let Some(m) = i.checked_sub(1).and_then(|t| missing.get(&t)).filter(|m| !m.is_empty()) {
            let names: Vec<String> = m.iter().map(|(n, name)| format!("{n}. {name}")).collect();
            outln!("    not in the binary: {}", names.join(", "));
        }
    }
    if missing.is_empty() {
        outln!("(RESOLVE: waypoints found in the binary of a component under `kdbg debug` on the target; none is)");
    }
    if let Some(d) = &dir {
        outln!("(your own tours: {d}/*.json; see README, \"Writing a tour\")");
    }
    for bad in &catalogue.bad {
        outln!("not a tour, skipped: {bad}");
    }
    Ok(())
}

/// For the components under debug on the target (none without one), what [`trace::unresolvable`] says.
fn resolve(args: &TraceArgs, catalogue: &Catalogue) -> Missing {
    let mut missing = Missing::new();
    let Ok(node) = args.target.connect() else { return missing };
    let state = state_dir();
    for c in kdbg_core::component::COMPONENTS {
        let of: Vec<usize> =
            (0..catalogue.tours.len()).filter(|&i| catalogue.tours[i].tour.component == c.name).collect();
        if of.is_empty() {
            continue;
        }
        let tours: Vec<_> = of.iter().map(|&i| &catalogue.tours[i].tour).collect();
        if let Ok(m) = trace::unresolvable(&*node, c, &tours, state.as_deref()) {
            missing.extend(of.into_iter().zip(m));
        }
    }
    missing
}

fn print_json(catalogue: &Catalogue, missing: &Missing, dir: Option<&camino::Utf8PathBuf>) {
    let rows: Vec<_> = catalogue
        .tours
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let t = &l.tour;
            let m = missing.get(&i);
            json!({ "tour": t.name, "component": t.component, "story": t.story, "waypoints": t.waypoints.len(),
                "resolved": m.map(|m| t.waypoints.len() - m.len()),
                "unresolved": m.map(|m| m.iter().map(|(n, name)| json!({ "waypoint": n, "name": name })).collect::<Vec<_>>()),
                "source": l.origin.to_string(), "overrides": l.overrides.as_ref().map(ToString::to_string) })
        })
        .collect();
    let bad: Vec<_> = catalogue.bad.iter().map(|e| json!({ "file": e.path, "error": e.to_string() })).collect();
    outln!("{}", json!({ "schema": JSON_SCHEMA, "tours": rows, "tour_dir": dir, "bad_tour_files": bad }));
}
