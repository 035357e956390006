use super::*;

#[test]
fn schedules_are_checked_and_tick_in_the_business_timezone() {
    let mut realty = shipped().remove(1).business;
    assert_eq!(realty.id, "realty");
    let schedule = realty.schedules[0].clone();
    // Friday 2026-10-30 13:00 in New York (EDT): the next weekday 09:00 is Monday's, by
    // when the clocks have gone back (EST, UTC-5).
    let friday: chrono::DateTime<chrono::Utc> = "2026-10-30T17:00:00Z".parse().unwrap();
    assert_eq!(
        crate::schedules::next_tick(&realty, &schedule, friday).map(|t| t.to_rfc3339()),
        Some("2026-11-02T14:00:00+00:00".into())
    );
    for (change, error) in [
        ("cron", "cron"),
        ("tag", "tag"),
        ("name", "unique"),
        ("limit", "limit"),
    ] {
        let mut broken = schedule.clone();
        match change {
            "cron" => broken.cron = "every morning".into(),
            "tag" => broken.tag = "lukewarm".into(),
            "limit" => broken.limit = 0,
            _ => {}
        }
        realty.schedules = vec![schedule.clone(), broken];
        if change != "name" {
            realty.schedules.remove(0);
        }
        let e = realty.check().unwrap_err().to_string();
        assert!(e.contains(error), "{change}: {e}");
    }
}

#[test]
fn a_split_campaign_spreads_leads_by_weight_and_keeps_each_with_its_agent() {
    let campaign = Campaign {
        name: "A/B".into(),
        source: "web".into(),
        agent: "a".into(),
        objective: None,
        split: vec![
            AgentShare {
                agent: "a".into(),
                weight: 70,
            },
            AgentShare {
                agent: "b".into(),
                weight: 30,
            },
        ],
    };
    let picks: Vec<&str> = (0..2000)
        .map(|i| campaign.agent_for(&format!("lead-{i}")))
        .collect();
    let b = picks.iter().filter(|a| **a == "b").count();
    assert!(
        (500..700).contains(&b),
        "{b} of 2000 leads went to b (30% expected)"
    );
    assert_eq!(campaign.agent_for("lead-7"), campaign.agent_for("lead-7"));
    let plain = Campaign {
        split: vec![],
        ..campaign.clone()
    };
    assert_eq!(plain.agent_for("lead-7"), "a");
    let mut zero = campaign;
    zero.split[1].weight = 0;
    let mut business = shipped().remove(0).business;
    zero.agent = business.default_agent.clone();
    zero.split[0].agent = business.default_agent.clone();
    zero.split[1].agent = business.default_agent.clone();
    business.campaigns.push(zero);
    assert!(business.check().unwrap_err().to_string().contains("weight"));
}

#[test]
fn shipped_businesses_parse() {
    let ids: Vec<_> = shipped().into_iter().map(|d| d.business.id).collect();
    assert_eq!(ids, ["demo", "realty", "dental", "saas"]);
}

#[test]
fn references_are_checked() {
    let demo = shipped().remove(0).business;
    let mut b = demo.clone();
    b.default_agent = "nobody".into();
    assert!(b.check().unwrap_err().to_string().contains("nobody"));
    let mut b = demo.clone();
    b.timezone = "Nowhere/Land".into();
    assert!(b.check().unwrap_err().to_string().contains("Nowhere/Land"));
    let mut b = demo;
    b.campaigns.push(Campaign {
        name: "x".into(),
        source: "web".into(),
        agent: b.default_agent.clone(),
        objective: Some("Sell Ice".into()),
        split: vec![],
    });
    assert!(b.check().unwrap_err().to_string().contains("Sell Ice"));
}

#[test]
fn custom_fields_are_checked_by_name() {
    let demo = shipped().remove(0).business;
    let mut fields = serde_json::Map::new();
    fields.insert("budget_range".into(), "Lots".into());
    let err = demo.check_custom_fields(&fields).unwrap_err();
    assert!(err.contains("budget_range"), "{err}");
    fields.insert("budget_range".into(), "500K-1M".into());
    demo.check_custom_fields(&fields).unwrap();
    fields.insert("shoe_size".into(), 42.into());
    assert!(
        demo.check_custom_fields(&fields)
            .unwrap_err()
            .contains("shoe_size")
    );
}
