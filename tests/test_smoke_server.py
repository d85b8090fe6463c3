def test_store_round_trip(toondb):
    with toondb.store() as store:
        store.put("t/a", {"x": 1})
        assert store.get("t/a") == {"x": 1}
