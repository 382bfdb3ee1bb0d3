//! The paper's isolation test (DCPortalsNG section 4.4) on real OvS.

use dclab_integration::api::Api;
use dclab_integration::cluster;
use dclab_integration::paper::{self, Plan, DISTINCT, OVERLAPPING};
use dclab_integration::world::build;

fn dclab_matrix(prefix: &str, plan: &Plan) -> paper::Matrix {
    let mut c = cluster(prefix, 3, false);
    let api = Api::connect(&c.client_config().unwrap());
    build(&mut c, Some(&api), plan);
    paper::fping_matrix(&c, plan).unwrap()
}

#[test]
fn dclab_matches_paper_table_4() {
    let got = dclab_matrix("it", &DISTINCT);
    println!(
        "{}",
        paper::render("dclab (paper Table 4), x = received", &DISTINCT, &got)
    );
    assert_eq!(got, paper::table4(&DISTINCT));
}

#[test]
fn dclab_isolates_tenants_with_identical_addresses() {
    let got = dclab_matrix("io", &OVERLAPPING);
    println!(
        "{}",
        paper::render("dclab, tenants sharing 10.0.0.1 and .2", &OVERLAPPING, &got)
    );
    assert_eq!(got, paper::table4(&OVERLAPPING));
}

#[test]
fn plain_ovs_matches_paper_table_5() {
    let mut c = cluster("ip", 3, true);
    build(&mut c, None, &DISTINCT);
    let got = paper::fping_matrix(&c, &DISTINCT).unwrap();
    println!(
        "{}",
        paper::render("plain OvS, NORMAL (paper Table 5), x = received", &DISTINCT, &got)
    );
    assert_eq!(got, paper::table5(&DISTINCT));
}
