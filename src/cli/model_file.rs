//! Reading and writing model files from the command line: the library handles the
//! bytes, this names the file in every message and picks the exit code.

use std::io::{self, Write};
use std::path::Path;

use gmm_io::{Encoding, FormatError, ModelFile};
use gmm_model::GaussianMixture;

use super::error::CliError;
use super::output::AtomicFile;

/// A model file read from disk.
pub struct Loaded {
    pub file: ModelFile,
    pub mixture: GaussianMixture,
    /// Which form the file had (told by its content, not its name).
    pub encoding: Encoding,
}

/// Loads and validates a model file (JSON or binary, recognised by its content).
/// A file that is missing, unreadable, corrupted, truncated or invalid is bad input.
pub fn load(path: &Path) -> Result<Loaded, CliError> {
    let name = path.display();
    let bytes = std::fs::read(path).map_err(|e| {
        let message = format!("{name}: cannot read the model: {e}");
        if is_bad_path(&e) {
            CliError::bad_input_msg(message)
        } else {
            CliError::failure_msg(message)
        }
    })?;
    let bad = |e: FormatError| CliError::bad_input(anyhow::Error::new(e).context(name.to_string()));
    let file = ModelFile::from_bytes(&bytes).map_err(bad)?;
    let mixture = file.mixture().map_err(bad)?;
    // A file that loaded is one of the two forms.
    let encoding = Encoding::of_bytes(&bytes).unwrap_or(Encoding::Binary);
    Ok(Loaded {
        file,
        mixture,
        encoding,
    })
}

/// The user named something that is not a readable file (as opposed to a device
/// failing while it is read).
fn is_bad_path(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied | io::ErrorKind::IsADirectory
    )
}

/// Encodes `file` as its path asks (JSON for `.json`, else binary) and puts it in
/// place atomically.
pub fn save(file: &ModelFile, mut out: AtomicFile) -> Result<(), CliError> {
    let name = out.path().display().to_string();
    let bytes = file
        .encode(Encoding::for_path(out.path()))
        .map_err(|e| CliError::failure(anyhow::Error::new(e).context(name.clone())))?;
    out.write_all(&bytes)
        .map_err(|e| CliError::failure_msg(format!("{name}: cannot write: {e}")))?;
    out.commit()
}
