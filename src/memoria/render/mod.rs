//! Renders a [`super::model::Memoria`] to its deliverables: `memoria.html` (the report, with
//! its charts inline and a print stylesheet), the CSV files of `datos/`, and `memoria.pdf`
//! printed from the page by a headless Chromium when one is installed.
//!
//! # Guarantees
//! - Everything is drawn from the one `Memoria`, so the page, its charts and the data files
//!   cannot disagree.
//! - Every text that comes from the logs is escaped where it is written (HTML by maud, SVG by
//!   plotters, CSV by the csv writer); the page runs no script and loads nothing from outside.
//! - The same `Memoria` gives the same bytes, except the page's one line saying when it was
//!   made.

mod chart;
mod format;
mod html;
mod pdf;
#[cfg(test)]
mod sample;
mod tables;

pub(crate) use html::html;
pub(crate) use pdf::{Pdf, pdf};
pub(crate) use tables::tables;
