//! The loader: precedence (shipped, the configuration directory, `--tour`), the override notice,
//! and errors naming the file, the field and the fix.

use super::*;

const HEALTHZ: &str = include_str!("../../../../tours/healthz.json");

fn scratch() -> (tempfile::TempDir, Utf8PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = Utf8PathBuf::from_path_buf(d.path().to_path_buf()).unwrap();
    (d, p)
}

/// The healthz tour renamed `name`, its component given as `component`.
fn tour_text(name: &str, component: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(HEALTHZ).unwrap();
    v["name"] = name.into();
    v["component"] = component.into();
    serde_json::to_string_pretty(&v).unwrap()
}

#[test]
fn user_tours_come_after_the_shipped_ones_and_override_by_component_and_name() {
    let (_d, dir) = scratch();
    std::fs::write(dir.join("b-mine.json"), tour_text("mine", "apiserver")).unwrap();
    std::fs::write(dir.join("a-healthz.json"), tour_text("healthz", "kube-apiserver")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a tour").unwrap();
    let c = Catalogue::load(Some(&dir), None).unwrap();
    assert!(c.bad.is_empty(), "{:?}", c.bad);
    assert_eq!(c.tours.len(), super::super::all().len() + 1, "healthz replaced, mine added");
    let mine = c.find("kube-apiserver", "mine").expect("the alias is kept as the canonical name");
    assert_eq!(mine.origin, Origin::File(dir.join("b-mine.json")));
    assert!(mine.notice().is_none());
    let h = c.find("kube-apiserver", "healthz").unwrap();
    assert_eq!(h.origin.to_string(), dir.join("a-healthz.json").as_str());
    assert_eq!(h.overrides, Some(Origin::Shipped));
    let notice = h.notice().unwrap();
    assert_eq!(notice, format!("tour healthz of kube-apiserver from {} overrides the shipped one", h.origin));
    assert_eq!(c.find("kube-apiserver", "request").unwrap().origin, Origin::Shipped);

    // --tour FILE comes last and overrides the directory's.
    let (_e, other) = scratch();
    let file = other.join("h.json");
    std::fs::write(&file, tour_text("healthz", "kube-apiserver")).unwrap();
    let c = Catalogue::load(Some(&dir), Some(&file)).unwrap();
    let h = c.find("kube-apiserver", "healthz").unwrap();
    assert_eq!(h.origin, Origin::File(file.clone()));
    assert!(h.notice().unwrap().ends_with(&format!("overrides the one in {}", dir.join("a-healthz.json"))));
    // A missing directory is no tour and no error.
    let c = Catalogue::load(Some(&dir.join("nope")), None).unwrap();
    assert!(c.bad.is_empty() && c.tours.iter().all(|l| l.origin == Origin::Shipped));
}

#[test]
fn bad_files_in_the_directory_are_kept_apart_and_a_bad_tour_file_is_an_error() {
    let (_d, dir) = scratch();
    std::fs::write(dir.join("good.json"), tour_text("good", "kube-apiserver")).unwrap();
    std::fs::write(dir.join("bad.json"), "{ \"name\": \"x\",, }").unwrap();
    let c = Catalogue::load(Some(&dir), None).unwrap();
    assert!(c.find("kube-apiserver", "good").is_some(), "the good tour is kept");
    assert_eq!(c.bad.len(), 1);
    assert_eq!(c.bad[0].path, dir.join("bad.json"));
    let e = Catalogue::load(None, Some(&dir.join("bad.json"))).unwrap_err();
    assert!(e.to_string().starts_with(&format!("{}:1:", dir.join("bad.json"))), "{e}");
    let e = Catalogue::load(None, Some(&dir.join("absent.json"))).unwrap_err();
    assert!(e.to_string().contains("cannot read it"), "{e}");
}

fn error(text: &str) -> String {
    parse(Utf8Path::new("/t/mine.json"), text).unwrap_err().to_string()
}

#[test]
fn a_syntax_error_names_the_file_line_and_column_and_the_fix() {
    let e = error("{\n  \"name\": \"x\",\n  \"story\": \"y\"\n  \"component\": \"kube-apiserver\"\n}");
    assert!(e.starts_with("/t/mine.json:4:3: not valid JSON: expected `,` or `}`"), "{e}");
    assert!(e.contains("\n  fix: correct the JSON there"), "{e}");
}

#[test]
fn a_wrong_field_is_named_by_its_path_with_the_fix() {
    let mut v: serde_json::Value = serde_json::from_str(HEALTHZ).unwrap();
    v["waypoints"][2].as_object_mut().unwrap().remove("functions");
    let e = error(&serde_json::to_string_pretty(&v).unwrap());
    assert!(e.starts_with("/t/mine.json:"), "{e}");
    assert!(e.contains(": field `waypoints[2].functions`: missing\n  fix: add it: an array of strings"), "{e}");

    let mut v: serde_json::Value = serde_json::from_str(HEALTHZ).unwrap();
    v["waypoints"][1]["capture"][1] = 3.into();
    let e = error(&serde_json::to_string(&v).unwrap());
    assert!(e.contains("field `waypoints[1].capture[1]`: expected a string, found number 3"), "{e}");
    assert!(e.starts_with("/t/mine.json:1:"), "serde's position: {e}");

    let mut v: serde_json::Value = serde_json::from_str(HEALTHZ).unwrap();
    v["waypoints"][0]["function"] = "x".into();
    let e = error(&serde_json::to_string(&v).unwrap());
    assert!(e.contains("field `waypoints[0].function`: unknown field\n  fix: remove it or correct its spelling; the fields here are name, functions"), "{e}");

    let e = error(&tour_text("x", "etcd"));
    assert!(e.contains("field `component`: no component \"etcd\"\n  fix: name one of kube-apiserver"), "{e}");
    let e = error("{\"name\": \"x\", \"component\": \"kube-apiserver\", \"story\": \"s\", \"waypoints\": []}");
    assert!(e.contains("field `waypoints`: an empty array"), "{e}");
    let e = error("[1]");
    assert!(e.contains("expected an object, found an array"), "{e}");
}

#[test]
fn the_readme_example_is_a_tour() {
    let readme = include_str!("../../../../../README.md");
    let section = &readme[readme.find("#### Writing a tour").unwrap()..];
    let start = section.find("```json\n").unwrap() + "```json\n".len();
    let text = &section[start..start + section[start..].find("```").unwrap()];
    let t = parse(Utf8Path::new("README.md"), text).unwrap();
    assert_eq!((t.name.as_str(), t.component.as_str(), t.waypoints.len()), ("delete", "kube-apiserver", 4));
}

#[test]
fn a_waypoint_needs_a_function_and_captures_may_be_empty() {
    let mut v: serde_json::Value = serde_json::from_str(HEALTHZ).unwrap();
    v["waypoints"][0]["functions"] = serde_json::json!([]);
    let e = error(&serde_json::to_string(&v).unwrap());
    assert!(e.contains("field `waypoints[0].functions`: an empty array"), "{e}");
    v["waypoints"][0]["functions"] = serde_json::json!(["f"]);
    v["waypoints"][0]["capture"] = serde_json::json!([]);
    v["waypoints"][0]["cond"] = serde_json::Value::Null;
    parse(Utf8Path::new("t.json"), &serde_json::to_string(&v).unwrap()).unwrap();
    v["waypoints"][0]["capture"] = serde_json::Value::Null;
    let e = error(&serde_json::to_string(&v).unwrap());
    assert!(e.contains("field `waypoints[0].capture`: expected an array, found null"), "{e}");
}
