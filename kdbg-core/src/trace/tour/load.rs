//! Where tours come from: shipped with kdbg, the user's configuration directory (`tours/*.json`
//! beside `config.toml`), and `kdbg trace --tour FILE.json`; later sources override earlier ones
//! with the same component and name, and say so. A file that is not a tour is an error naming the
//! file, the field and the fix.

use camino::{Utf8Path, Utf8PathBuf};

use super::check::{check, FieldProblem};
use super::Tour;
use crate::component::Component;

/// Where a tour came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Shipped,
    File(Utf8PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Shipped => f.write_str("shipped"),
            Origin::File(p) => f.write_str(p.as_str()),
        }
    }
}

/// A tour, where it came from, and the tour of the same component and name it replaced.
#[derive(Debug, Clone)]
pub struct Listed {
    pub tour: Tour,
    pub origin: Origin,
    pub overrides: Option<Origin>,
}

impl Listed {
    /// `tour NAME of COMPONENT from FILE overrides the shipped one`, for a tour that replaced another.
    pub fn notice(&self) -> Option<String> {
        let old = self.overrides.as_ref()?;
        let old = match old {
            Origin::Shipped => "the shipped one".to_string(),
            Origin::File(p) => format!("the one in {p}"),
        };
        Some(format!("tour {} of {} from {} overrides {old}", self.tour.name, self.tour.component, self.origin))
    }
}

/// A file that is not a tour: the file, where in it (line, column, field), what, and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}{}: {}{problem}\n  fix: {fix}", at.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default(), field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct TourFileError {
    pub path: Utf8PathBuf,
    /// Line and column (from 1), when known.
    pub at: Option<(usize, usize)>,
    /// The field in JSON-path form (`waypoints[2].functions`).
    pub field: Option<String>,
    pub problem: String,
    pub fix: String,
}

/// Every tour, in order (shipped first, then the user's), and the files that are not tours.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    pub tours: Vec<Listed>,
    pub bad: Vec<TourFileError>,
}

impl Catalogue {
    /// The shipped tours, then each `*.json` of `dir` (name order; a missing directory is none),
    /// then `file` (`--tour`), each overriding a tour of the same component and name. Only
    /// `file` being bad is an error; the directory's bad files are kept in [`Catalogue::bad`].
    pub fn load(dir: Option<&Utf8Path>, file: Option<&Utf8Path>) -> Result<Catalogue, TourFileError> {
        let mut c = Catalogue::default();
        for t in super::all() {
            c.add(t, Origin::Shipped);
        }
        if let Some(dir) = dir {
            for path in json_files(dir, &mut c.bad) {
                match read(&path) {
                    Ok(t) => c.add(t, Origin::File(path)),
                    Err(e) => c.bad.push(e),
                }
            }
        }
        if let Some(file) = file {
            c.add(read(file)?, Origin::File(file.to_owned()));
        }
        Ok(c)
    }

    fn add(&mut self, tour: Tour, origin: Origin) {
        let same = self.tours.iter_mut().find(|l| l.tour.component == tour.component && l.tour.name == tour.name);
        match same {
            Some(old) => {
                let overrides = Some(std::mem::replace(&mut old.origin, origin.clone()));
                *old = Listed { tour, origin, overrides };
            }
            None => self.tours.push(Listed { tour, origin, overrides: None }),
        }
    }

    /// The tour `name` of `component` (canonical name).
    pub fn find(&self, component: &str, name: &str) -> Option<&Listed> {
        self.tours.iter().find(|l| l.tour.component == component && l.tour.name == name)
    }
}

/// The `*.json` files of `dir` in name order; an unreadable directory is recorded in `bad`.
fn json_files(dir: &Utf8Path, bad: &mut Vec<TourFileError>) -> Vec<Utf8PathBuf> {
    let entries = match dir.read_dir_utf8() {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            bad.push(unreadable(dir, &e));
            return Vec::new();
        }
    };
    let mut files: Vec<Utf8PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path().to_owned())
        .filter(|p| p.extension() == Some("json") && !p.is_dir())
        .collect();
    files.sort();
    files
}

fn unreadable(path: &Utf8Path, e: &std::io::Error) -> TourFileError {
    TourFileError {
        path: path.to_owned(),
        at: None,
        field: None,
        problem: format!("cannot read it: {e}"),
        fix: "make it readable, or remove it".into(),
    }
}

/// The tour in the file `path`.
pub fn read(path: &Utf8Path) -> Result<Tour, TourFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(path, &e))?;
    parse(path, &text)
}

/// The tour `text` (read from `path`) describes; its component may be given by an alias and is
/// kept by its canonical name.
pub fn parse(path: &Utf8Path, text: &str) -> Result<Tour, TourFileError> {
    let error = |at, p: FieldProblem| TourFileError {
        path: path.to_owned(),
        at,
        field: (!p.field.is_empty()).then_some(p.field),
        problem: p.problem,
        fix: p.fix,
    };
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| TourFileError {
        path: path.to_owned(),
        at: Some((e.line(), e.column())),
        field: None,
        problem: format!("not valid JSON: {}", strip_position(&e.to_string())),
        fix: "correct the JSON there (a missing comma, quote or bracket, or a trailing comma)".into(),
    })?;
    let typed = serde_json::from_str::<Tour>(text);
    if let Some(p) = check(&doc) {
        let at = typed.as_ref().err().map(|e| (e.line(), e.column()));
        return Err(error(at, p));
    }
    let mut tour = typed.map_err(|e| {
        let p =
            FieldProblem { field: String::new(), problem: e.to_string(), fix: "see README, \"Writing a tour\"".into() };
        error(None, p)
    })?;
    match Component::lookup(&tour.component) {
        Ok(c) => tour.component = c.name.into(),
        Err(_) => {
            let names: Vec<&str> = crate::component::COMPONENTS.iter().map(|c| c.name).collect();
            let p = FieldProblem {
                field: "component".into(),
                problem: format!("no component {:?}", tour.component),
                fix: format!("name one of {}", names.join(", ")),
            };
            return Err(error(None, p));
        }
    }
    Ok(tour)
}

/// serde_json's message without its trailing ` at line L column C` (the position is shown apart).
fn strip_position(message: &str) -> &str {
    message.rfind(" at line ").map_or(message, |i| &message[..i])
}

#[cfg(test)]
mod tests;
