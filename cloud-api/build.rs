//! Embeds the migrations' directory as a rebuild trigger and the build metadata
//! (`TANDEM_BUILD_COMMIT`, `TANDEM_BUILD_DATE`) that `tandem-cloud version` prints.

#[path = "../shared/build_info.rs"]
mod build_info;

fn main() {
    // Migrations are embedded by `sqlx::migrate!`; a new file must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    build_info::emit();
}
