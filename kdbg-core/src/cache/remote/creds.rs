//! The registry credentials `docker login` left: Docker's `config.json` (`$DOCKER_CONFIG` or
//! `~/.docker`), its `auths`, `credsStore` and `credHelpers`. None found means anonymous.

use docker_credential::{CredentialRetrievalError as E, DockerCredential};
use oci_client::secrets::RegistryAuth;

/// The credentials for `registry` (`HOST[:PORT]`), and a note when some were configured but
/// could not be used. Secrets never appear in the note.
pub(super) fn for_registry(registry: &str) -> (RegistryAuth, Option<String>) {
    if !config_file().is_some_and(|f| f.exists()) {
        return (RegistryAuth::Anonymous, None);
    }
    match docker_credential::get_credential(registry) {
        Ok(DockerCredential::UsernamePassword(user, secret)) => (RegistryAuth::Basic(user, secret), None),
        Ok(DockerCredential::IdentityToken(_)) => (
            RegistryAuth::Anonymous,
            Some(format!(
                "Docker's config holds an identity token for {registry}, which kdbg cannot use; trying anonymously \
                 (`docker login {registry}` with a user name and password or token fixes it)"
            )),
        ),
        Err(E::ConfigNotFound | E::NoCredentialConfigured) => (RegistryAuth::Anonymous, None),
        Err(E::HelperFailure { helper, .. }) => (
            RegistryAuth::Anonymous,
            Some(format!(
                "the Docker credential helper `{helper}` failed for {registry}; trying anonymously \
                 (check `{helper} list`, or run `docker login {registry}`)"
            )),
        ),
        Err(e) => (
            RegistryAuth::Anonymous,
            Some(format!("cannot read Docker's credentials for {registry} ({e}); trying anonymously")),
        ),
    }
}

/// Docker's `config.json`: in `$DOCKER_CONFIG`, else `~/.docker`.
fn config_file() -> Option<std::path::PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    let dir = var("DOCKER_CONFIG").or_else(|| var("HOME").map(|h| h.join(".docker")))?;
    Some(dir.join("config.json"))
}
