//! Renders a [`super::model::Memoria`] to its deliverables.
