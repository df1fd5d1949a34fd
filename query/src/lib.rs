//! edgelens query
