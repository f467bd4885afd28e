//! The host-side machinery that the providers which build nodes on this
//! machine (nspawn, libvirt) share. No provider imports another provider's
//! module; what two of them need lives here.
//!
//! - [`paths`]: where a lab's files live (`/var/lib/labctl`), and its lock.
//! - [`keys`]: the lab key pair and the pinned host keys.
//! - [`preflight`]: root, host tools, subnet and ownership checks.
//! - [`image`]: the cached base image (mmdebstrap, built once per recipe).
//! - [`layer`]: the inventory's `preinstall:` packages, a cached layer on the image.
//! - [`rootfs`]: a node's overlay on the image and its first-boot files.
//! - [`network`]: the lab bridge and the nft table that keeps the lab to itself.
//! - [`cache`]: the host's package cache (apt-cacher-ng) on the lab gateways.
//! - [`cgroup`]: a cgroup of its own for each helper process.
//! - [`trash`]: removing a lab's folder and the project's `.labctl/` state.
//! - [`process`]: starting, finding, halting and killing the nspawn processes.
//! - [`tool`]: running a host tool once and failing with what it said.

pub mod cache;
pub mod cgroup;
pub mod image;
pub mod keys;
pub mod layer;
pub mod network;
pub mod paths;
pub mod preflight;
pub mod process;
pub mod rootfs;
pub mod seed;
pub mod tool;
pub mod trash;
