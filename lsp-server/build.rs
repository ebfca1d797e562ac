//! Embeds the build metadata (`TANDEM_BUILD_COMMIT`, `TANDEM_BUILD_DATE`) that
//! `tandem --version` prints.

#[path = "../shared/build_info.rs"]
mod build_info;

fn main() {
    build_info::emit();
}
