//! edgelens aggregate
