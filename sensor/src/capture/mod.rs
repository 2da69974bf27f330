//! How candidate packets reach userspace for deep inspection: AF_XDP sockets in `tap` mode.

pub mod afxdp;
