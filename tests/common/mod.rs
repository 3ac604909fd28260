// Not every test binary uses every helper.
#[allow(dead_code)]
pub mod offline;
pub mod rsyslog;
