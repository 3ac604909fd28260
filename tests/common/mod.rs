pub mod rsyslog;
