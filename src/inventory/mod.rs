//! inventory (being written)
