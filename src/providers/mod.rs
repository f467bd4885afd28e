//! Providers create and remove a lab's nodes.
