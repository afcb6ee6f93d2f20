//! Tours of your own: one in the test's configuration directory (`$XDG_CONFIG_HOME/kdbg/tours`)
//! and one given as `--tour FILE.json` are listed, resolved and recorded like a shipped one; bad
//! files are errors naming the file and the field, and `--list` names them beside the good tours.

use std::path::Path;

use serde_json::Value;

use crate::session::Lab;

/// The fixture's healthz tour named `name`, its (unresolvable) waypoint 4 now the mux's lookup.
fn healthz_copy(name: &str) -> String {
    let mut v: Value = serde_json::from_str(include_str!("../../../kdbg-core/tours/healthz.json")).unwrap();
    v["name"] = name.into();
    v["waypoints"][3] = serde_json::json!({
        "name": "mux lookup",
        "functions": ["net/http.(*ServeMux).Handler"],
        "means": "the mux finds the handler registered for the path",
        "capture": ["r.URL.Path"]
    });
    serde_json::to_string_pretty(&v).unwrap()
}

/// The stop names of a `--json` trace's timeline, and the tour it names.
fn recorded(stdout: &str) -> (Value, Vec<String>) {
    let doc: Value = serde_json::from_str(stdout).expect("--json prints JSON");
    let names = doc["timeline"]["hits"].as_array().unwrap().iter().map(|h| h["waypoint_name"].to_string()).collect();
    (doc, names)
}

pub fn own_tours(lab: &Lab, curl: &str) {
    let xdg = tempfile::tempdir().unwrap();
    let dir = xdg.path().join("kdbg/tours");
    std::fs::create_dir_all(&dir).unwrap();
    let mine = dir.join("mine.json");
    std::fs::write(&mine, healthz_copy("mine")).unwrap();
    let broken = dir.join("broken.json");
    std::fs::write(&broken, "{\n  \"name\": \"broken\",\n  \"component\": \"apiserver\"\n  \"story\": \"x\"\n}\n")
        .unwrap();
    let typo = dir.join("typo.json");
    std::fs::write(&typo, healthz_copy("typo").replacen("\"functions\"", "\"function\"", 1)).unwrap();
    let with_xdg = |args: &[&str]| lab.kdbg(args).env("XDG_CONFIG_HOME", xdg.path());

    // Listed with its file, resolved in the running binary; the bad files named beside it.
    let list = with_xdg(&["trace", "--list"]).success().stdout;
    let row =
        |name: &str| list.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{list}"));
    assert!(row("mine").contains("6/6") && row("mine").contains(mine.to_str().unwrap()), "{list}");
    assert!(row("healthz").contains("5/6") && row("healthz").contains("shipped"), "{list}");
    assert!(list.contains("    not in the binary: 4. upstream root health"), "{list}");
    assert!(list.contains(&format!("not a tour, skipped: {}:4:3: not valid JSON", broken.display())), "{list}");
    assert!(list.contains(&format!("not a tour, skipped: {}:", typo.display())), "{list}");
    assert!(list.contains("field `waypoints[0].function`: unknown field"), "{list}");

    // Recorded like a shipped one: the timeline names the user's tour and its file.
    let out = with_xdg(&["trace", "apiserver", "mine", "--run", curl, "--for", "1", "--json"]).success();
    let (doc, stops) = recorded(&out.stdout);
    assert_eq!(doc["timeline"]["tour"]["name"], "mine", "{doc}");
    assert_eq!(doc["tour_file"], mine.to_str().unwrap(), "{doc}");
    assert!(doc["timeline"]["unresolved"].as_array().unwrap().is_empty(), "{doc}");
    assert!(
        stops.iter().any(|s| s == "\"mux lookup\"") && stops.iter().any(|s| s == "\"healthz handler\""),
        "{stops:?}"
    );
    assert!(out.stderr.contains(&format!("tour mine of kube-apiserver from {}", mine.display())), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("not a tour, skipped: {}", broken.display())), "{}", out.stderr);

    tour_file(lab, curl, &broken, &typo);
}

/// `--tour FILE.json` (here with `$KDBG_CONFIG` naming a directory without tours): recorded, an
/// override said, a mismatching COMPONENT refused, a bad file an error naming the file and field.
fn tour_file(lab: &Lab, curl: &str, broken: &Path, typo: &Path) {
    let elsewhere = tempfile::tempdir().unwrap();
    let file = elsewhere.path().join("healthz-mine.json");
    std::fs::write(&file, healthz_copy("healthz")).unwrap();
    let config = elsewhere.path().join("conf/config.toml");
    let f = file.to_str().unwrap();
    let with_config = |args: &[&str]| lab.kdbg(args).env("KDBG_CONFIG", &config);

    let out = with_config(&["trace", "--tour", f, "--run", curl, "--for", "1", "--json"]).success();
    let (doc, stops) = recorded(&out.stdout);
    assert_eq!(doc["timeline"]["tour"]["name"], "healthz", "{doc}");
    assert_eq!(doc["tour_file"], f, "{doc}");
    assert!(stops.iter().any(|s| s == "\"mux lookup\""), "{stops:?}");
    assert!(
        out.stderr.contains(&format!("tour healthz of kube-apiserver from {f} overrides the shipped one")),
        "{}",
        out.stderr
    );
    let list = with_config(&["trace", "--list", "--tour", f]).success().stdout;
    assert!(
        list.lines()
            .any(|l| l.starts_with("healthz ") && l.contains("6/6") && l.contains(&format!("{f} (overrides shipped)"))),
        "{list}"
    );

    let out = with_config(&["trace", "scheduler", "--tour", f]).failure(1);
    assert!(out.stderr.contains(&format!("{f} is a tour of kube-apiserver, not of kube-scheduler")), "{}", out.stderr);
    let out = with_config(&["trace", "--tour", broken.to_str().unwrap()]).failure(1);
    assert!(out.stderr.contains(&format!("{}:4:3: not valid JSON", broken.display())), "{}", out.stderr);
    assert!(out.stderr.contains("fix: correct the JSON there"), "{}", out.stderr);
    let out = with_config(&["trace", "--tour", typo.to_str().unwrap()]).failure(1);
    assert!(
        out.stderr.contains(&format!("{}:", typo.display()))
            && out.stderr.contains("field `waypoints[0].function`: unknown field"),
        "{}",
        out.stderr
    );
    let mut wrong: Value = serde_json::from_str(&healthz_copy("wrong")).unwrap();
    wrong["waypoints"][2]["functions"] = 7.into();
    let wrong_file = elsewhere.path().join("wrong.json");
    std::fs::write(&wrong_file, serde_json::to_string_pretty(&wrong).unwrap()).unwrap();
    let out = with_config(&["trace", "--tour", wrong_file.to_str().unwrap()]).failure(1);
    assert!(out.stderr.contains("field `waypoints[2].functions`: expected an array, found number 7"), "{}", out.stderr);
}
