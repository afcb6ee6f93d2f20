//! kdbg's OCI artifact: one zstd-compressed debug binary per component and key, described by
//! manifest annotations; and the checks a pulled one must pass before kdbg uses it.

use std::collections::BTreeMap;

/// The manifest's `artifactType`.
pub const ARTIFACT_TYPE: &str = "application/vnd.kdbg.debug-binary.v1";
/// The one layer: the binary, zstd-compressed.
pub const LAYER_TYPE: &str = "application/vnd.kdbg.debug-binary.v1+zstd";
/// The config of an artifact without one (OCI image spec 1.1): the two bytes `{}`.
pub const EMPTY_CONFIG_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The layout of the annotations below; another value is not read.
pub const FORMAT: &str = "1";

const P: &str = "io.kdbg.";
const CREATED: &str = "org.opencontainers.image.created";

/// What an artifact says of its binary (its manifest's annotations).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Facts {
    pub component: String,
    /// The component's full key (sha256 of its build inputs).
    pub key: String,
    pub key_schema: String,
    /// sha256 and size of the uncompressed binary.
    pub sha256: String,
    pub size: u64,
    /// `linux/amd64`.
    pub platform: String,
    /// `go1.19.8`.
    pub go: String,
    pub dwarf: u16,
    /// The make variables it was built with, `K=V` separated by spaces.
    pub flags: String,
    pub kube_version: String,
    pub kube_commit: String,
    /// The kdbg that pushed it.
    pub kdbg_version: String,
    pub built_by: String,
    /// RFC 3339.
    pub created: String,
}

impl Facts {
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        let mut put = |k: &str, v: String| a.insert(format!("{P}{k}"), v);
        put("schema", FORMAT.to_string());
        put("component", self.component.clone());
        put("key", self.key.clone());
        put("key-schema", self.key_schema.clone());
        put("sha256", self.sha256.clone());
        put("size", self.size.to_string());
        put("platform", self.platform.clone());
        put("go", self.go.clone());
        put("dwarf", self.dwarf.to_string());
        put("flags", self.flags.clone());
        put("kube-version", self.kube_version.clone());
        put("kube-commit", self.kube_commit.clone());
        put("version", self.kdbg_version.clone());
        put("built-by", self.built_by.clone());
        a.insert(CREATED.to_string(), self.created.clone());
        a
    }

    /// Reads the annotations back; a missing one or another format is an error naming it.
    pub fn from_annotations(a: &BTreeMap<String, String>) -> Result<Facts, String> {
        let get = |k: &str| a.get(&format!("{P}{k}")).cloned().ok_or_else(|| format!("no {P}{k} annotation"));
        let schema = get("schema")?;
        if schema != FORMAT {
            return Err(format!("artifact format {schema}, this kdbg reads {FORMAT}"));
        }
        let number = |k: &str| get(k)?.parse::<u64>().map_err(|_| format!("{P}{k} is not a number"));
        Ok(Facts {
            component: get("component")?,
            key: get("key")?,
            key_schema: get("key-schema")?,
            sha256: get("sha256")?,
            size: number("size")?,
            platform: get("platform")?,
            go: get("go")?,
            dwarf: number("dwarf")? as u16,
            flags: get("flags")?,
            kube_version: get("kube-version")?,
            kube_commit: get("kube-commit").unwrap_or_default(),
            kdbg_version: get("version")?,
            built_by: get("built-by").unwrap_or_default(),
            created: a.get(CREATED).cloned().unwrap_or_default(),
        })
    }
}

/// What the key a binary is pulled for demands of it.
#[derive(Debug, Clone)]
pub struct Expect {
    pub component: String,
    pub key: String,
    pub key_schema: String,
    pub platform: String,
    pub go: String,
    pub flags: String,
}

impl Expect {
    /// The first way `facts` do not fit this key, if any.
    pub fn mismatch(&self, facts: &Facts) -> Option<String> {
        let pairs = [
            ("component", &self.component, &facts.component),
            ("key schema", &self.key_schema, &facts.key_schema),
            ("key", &self.key, &facts.key),
            ("platform", &self.platform, &facts.platform),
            ("Go", &self.go, &facts.go),
            ("flags", &self.flags, &facts.flags),
        ];
        pairs
            .iter()
            .find(|(_, want, got)| want != got)
            .map(|(what, want, got)| format!("{what} is {got:?}, not {want:?}"))
    }
}

/// The make variables as annotated: `K=V` pairs, sorted, separated by spaces.
pub fn flags_text(vars: &BTreeMap<String, String>) -> String {
    crate::flags::make_args(vars).join(" ")
}

/// Who pushes: `$KDBG_BUILT_BY`, else `user@host` (CI sets the variable to its run's name).
pub fn built_by() -> String {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(b) = var("KDBG_BUILT_BY") {
        return b;
    }
    let user = var("USER").or_else(|| var("LOGNAME")).unwrap_or_else(|| "unknown".into());
    let host = crate::session::journal::Who::me().host;
    format!("{user}@{host}")
}

/// Now, as RFC 3339 UTC (`2026-12-07T23:59:37Z`), without a date crate.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Unix seconds as RFC 3339 UTC (`2026-12-07T23:59:37Z`).
pub fn rfc3339(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            component: "kube-apiserver".into(),
            key: "k".into(),
            key_schema: "1".into(),
            sha256: "s".into(),
            size: 42,
            platform: "linux/arm64".into(),
            go: "go1.19.8".into(),
            dwarf: 4,
            flags: "DBG=1".into(),
            kube_version: "v1.20.2".into(),
            kube_commit: String::new(),
            kdbg_version: "0.1.0".into(),
            built_by: "ci".into(),
            created: "2026-12-07T00:00:00Z".into(),
        }
    }

    #[test]
    fn annotations_round_trip_and_reject_what_they_lack() {
        let f = facts();
        let mut a = f.annotations();
        assert_eq!(Facts::from_annotations(&a).unwrap(), f);
        a.insert("io.kdbg.schema".into(), "2".into());
        assert!(Facts::from_annotations(&a).unwrap_err().contains("format 2"));
        let mut a = f.annotations();
        a.remove("io.kdbg.go");
        assert!(Facts::from_annotations(&a).unwrap_err().contains("io.kdbg.go"));
    }

    #[test]
    fn a_binary_for_another_platform_or_go_does_not_fit() {
        let e = Expect {
            component: "kube-apiserver".into(),
            key: "k".into(),
            key_schema: "1".into(),
            platform: "linux/arm64".into(),
            go: "go1.19.8".into(),
            flags: "DBG=1".into(),
        };
        assert_eq!(e.mismatch(&facts()), None);
        let amd = Facts { platform: "linux/amd64".into(), ..facts() };
        assert!(e.mismatch(&amd).unwrap().contains("platform"));
        let go = Facts { go: "go1.20".into(), ..facts() };
        assert!(e.mismatch(&go).unwrap().contains("Go"));
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_687_977), "2026-12-07T23:59:37Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
