from localllm.engine.stops import StopScanner


def feed_all(scanner, pieces):
    shown, hit = "", False
    for piece in pieces:
        text, hit = scanner.feed(piece)
        shown += text
        if hit:
            return shown, True
    return shown + scanner.flush(), hit


def test_stop_split_across_tokens_is_not_shown():
    assert feed_all(StopScanner(["</answer>"]), ["The end", "</an", "swer>", " more"]) == (
        "The end",
        True,
    )


def test_text_that_only_resembles_a_stop_is_released():
    assert feed_all(StopScanner(["STOP"]), ["ST", "OR", "Y"]) == ("STORY", False)


def test_held_text_is_flushed_at_the_end():
    assert feed_all(StopScanner(["STOP"]), ["a", "ST"]) == ("aST", False)


def test_earliest_of_several_stops_wins():
    assert feed_all(StopScanner(["B", "A"]), ["xxAyyB"]) == ("xx", True)


def test_no_stops_passes_everything_through():
    scanner = StopScanner([])
    assert scanner.feed("anything") == ("anything", False)
