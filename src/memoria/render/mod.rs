//! Renders a [`super::model::Memoria`] to its deliverables.

use std::path::Path;

use super::model::Memoria;

/// Whether the PDF was made.
pub(crate) enum Pdf {
    /// Written.
    Made,
    /// No Chromium on this machine.
    NoChromium,
}

/// The PDF could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct PdfError(String);

/// The report.
pub(crate) fn html(m: &Memoria) -> String {
    serde_json::to_string(m).unwrap_or_default()
}

/// The CSV tables.
pub(crate) fn tables(_m: &Memoria) -> Vec<(&'static str, Vec<u8>)> {
    Vec::new()
}

/// The PDF.
pub(crate) fn pdf(_html: &Path, _pdf: &Path) -> Result<Pdf, PdfError> {
    Ok(Pdf::NoChromium)
}
