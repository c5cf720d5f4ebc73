//! template (being written)
