import pytest

from moderation.detectors.rules import RulesDetector, load_rules
from moderation.errors import ConfigError
from tests.moderation.factories import item


@pytest.fixture(scope="module")
def rules():
    return RulesDetector.from_file()


def labels(det, text, **kw):
    return [s.label for s in det.detect([item(text, **kw)])[0]]


@pytest.mark.parametrize(
    "text",
    [
        "kys",
        "just kys already",
        "k y s",
        "k.y.s",
        "K-Y-S",
        "k\u200by\u200bs",
        "go kill yourself",
        "go k1ll urself",
        "you should kill yourself",
        "Kill yourself.",
        "you should just die",
        "go die",
        "why don't you jump off a bridge",
        "do everyone a favour and die",
        "Кys",  # Cyrillic k
    ],
)
def test_incitement_blocks_with_obfuscations(rules, text):
    assert "rules.incitement" in labels(rules, text)


@pytest.mark.parametrize(
    "text",
    [
        "he told me to kys every day",
        "my ex told me to go kill myself",
        'she said "kys" and laughed',
        "people who tell you to kill yourself are wrong",
        "don't kill yourself over this exam",
        "I want to kill myself",  # the writer's own pain: crisis, not rules
        "I just die inside every time",
        "keys, skys and kyiv",
    ],
)
def test_quotes_counter_speech_and_own_pain_do_not_fire(rules, text):
    assert labels(rules, text) == []


def test_method_instructions_and_requests(rules):
    assert labels(rules, "the lethal dose is about 20") == ["rules.method_instruction"]
    assert labels(rules, "take 40 of them and you'll never wake up") == ["rules.method_instruction"]
    assert labels(rules, "how many pills would it take to die") == ["rules.method_request"]
    assert labels(rules, "what's the lethal dose of paracetamol") == ["rules.method_request"]
    sig = rules.detect([item("what's the lethal dose of paracetamol")])[0][0]
    assert sig.action == "escalate"  # asking is a person at risk: escalated, never blocked


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("you're a worthless piece of shit", "rules.abuse"),
        ("fuck you", "rules.abuse"),
        ("all addicts are just animals", "rules.dehumanising"),
        ("nobody would miss you", "rules.cruelty"),
    ],
)
def test_abuse_aimed_at_others(rules, text, label):
    assert label in labels(rules, text)


@pytest.mark.parametrize(
    "text",
    [
        'my dad used to say "you\'re a worthless piece of shit"',
        "I'm such an idiot",
        "you're not an idiot",
        "fuck you anxiety",
        "this is fucking hard",
        "my intrusive thoughts should die",
        "you think nobody would miss you, but we would",
    ],
)
def test_profanity_self_talk_and_quotes_pass(rules, text):
    assert labels(rules, text) == []


def test_evidence_maps_to_original(rules):
    text = "lol G0 K1LL urself now"
    sig = rules.detect([item(text)])[0][0]
    span = sig.evidence[0]
    assert text[span.start : span.end] == "G0 K1LL urself"
    assert sig.rule
    assert sig.rule.startswith("incitement[")


def test_profiles_and_spaces(tmp_path):
    cfg = tmp_path / "rules.toml"
    cfg.write_text(
        """
[[list]]
name = "grief_only"
action = "flag"
profiles = ["quiet"]
spaces = ["grief"]
patterns = ['\\bbanana\\b']
"""
    )
    det = RulesDetector.from_file(cfg)
    assert labels(det, "banana", profile="quiet", space="grief") == ["rules.grief_only"]
    assert labels(det, "banana", profile="support", space="grief") == []
    assert labels(det, "banana", profile="quiet", space="anxiety") == []


def test_bad_regex_refused_with_file_line_and_reason(tmp_path):
    cfg = tmp_path / "rules.toml"
    cfg.write_text(
        """# comment
[[list]]
name = "ok"
action = "block"
patterns = [
  '\\bfine\\b',
  '(unclosed',
]
"""
    )
    with pytest.raises(ConfigError) as err:
        load_rules(cfg)
    assert err.value.file == str(cfg)
    assert err.value.line == 7
    assert "missing )" in err.value.reason or "unterminated" in err.value.reason
    assert str(cfg) in str(err.value)
    assert ":7" in str(err.value)


def test_bad_action_refused(tmp_path):
    cfg = tmp_path / "rules.toml"
    cfg.write_text('[[list]]\nname = "x"\naction = "nuke"\npatterns = ["a"]\n')
    with pytest.raises(ConfigError, match="action"):
        load_rules(cfg)


# Written for Hearth in a support room's voice; none of these comes from an evaluation set.
@pytest.mark.parametrize(
    "text",
    [
        "honestly gay men are vermin",
        "Why are all immigrants so lazy",
        "I really hate Muslims",
        "can't stand trans women, they're freaks",
        "those filthy refugees again",
        "disabled people should be put down",
        "Black people don't deserve respect",
        "if any of those Somalis come near my house I'll hurt them",
        "the only good Jews are the silent ones",
        "people with schizophrenia are dangerous",
        "W0MEN are 1nferior",  # leetspeak folded by the normaliser
        # the speaker's own claim, however it is dressed up as someone else's
        "Muslims are vermin. That's what I think and I won't apologise",
        "Women are stupid, according to me",
        "As my grandad always said, Jews are rats",
        "Like my dad says, immigrants are vermin",
        "Muslims are terrorists, as the news says",
        "I believe Jews are evil",
        "Trans people are freaks, stop telling me otherwise",
    ],
)
def test_attacks_on_groups_block(rules, text):
    assert "rules.identity_hate" in labels(rules, text)


@pytest.mark.parametrize(
    "text",
    [
        "my dad says immigrants are criminals and it breaks my heart",
        "a man on the train shouted that Muslims are terrorists and nobody said anything",
        "hate against trans people has no place here",
        "I'm not going to pretend Muslims are dangerous to keep my family happy",
        "gay men are not disgusting, they are my friends",
        "no disabled person deserves to be treated like that",
        "trans people get killed at shocking rates and it terrifies me",
        "someone sprayed 'Jews are vermin' on the bus stop",
        "I used to think immigrants were criminals and I'm ashamed of it",
        "women are sick of being ignored by doctors",
        "I don't hate Muslims, I never did",
        "I'm a Black woman and proud of it",
        "Nobody gets to tell me that trans women are freaks",
        "Don't ever say gay people are sick in here",
        "Being told my whole life that disabled people are worthless wrecked my confidence",
        "The sign outside the mosque read: Muslims are animals. I haven't slept since.",
        # the claim first and whose it is after, words received, beliefs taught and unlearned
        "Muslims are vermin. That's what my neighbour shouts at us every morning.",
        "Women are stupid, according to my father. He was wrong about so much.",
        "Gay people are disgusting. I heard that every single day growing up.",
        "Disabled people are a burden - that's the message I got from every benefits form",
        "Growing up I was taught that gay people are abominations",
        "I was brought up to think Muslims are dangerous. I'm unlearning it",
        "I once believed Black people were dangerous because of the news, and I was so wrong",
        "Stop telling me autistic people are dangerous, my son is the gentlest soul",
        "It's a myth that immigrants are criminals and the figures prove it",
        "If I hear one more person say refugees are vermin I'm going to scream",
        "The graffiti on our wall says immigrants are vermin and the council hasn't removed it",
        "It hurts when strangers act like autistic people are stupid",
        "My coworkers laugh about how Indians are dirty and I'm Indian",
        # survivors speaking of one person, and people who are literally sick
        "that man should rot in prison for what he did to me",
        "that man is violent when he drinks and I'm scared to go home",
        "I'm so sick of men telling me to smile",
        "disabled people are sick more often and wait longer for care",
    ],
)
def test_reports_counter_speech_and_identity_talk_pass(rules, text):
    assert [lbl for lbl in labels(rules, text) if lbl != "rules.reported_hate"] == []


@pytest.mark.parametrize(
    "text",
    [
        "Immigrants are parasites, says the flyer that came through our door today.",
        "I refuse to accept that disabled people are a burden",
        "It's a myth that immigrants are criminals and the figures prove it",
        "Growing up I was taught that gay people are abominations",
    ],
)
def test_a_report_or_rejection_of_hate_is_noted_for_the_policy(rules, text):
    # identity_hate's allow-list read as evidence: the policy then lets a moderator, not a model,
    # decide on a model's hate label (policy.toml, withheld_when_reported)
    assert "rules.reported_hate" in labels(rules, text)


@pytest.mark.parametrize(
    "text",
    [
        "honestly gay men are vermin",
        "I really hate Muslims",
        "As my dad always said, immigrants are parasites, and he was right",
        "women are too emotional to be in charge",
    ],
)
def test_hate_said_in_ones_own_voice_is_not_noted_as_a_report(rules, text):
    assert "rules.reported_hate" not in labels(rules, text)


def test_patterns_from_must_name_an_allow_list_above(tmp_path):
    cfg = tmp_path / "rules.toml"
    head = '[[list]]\nname = "a"\naction = "block"\npatterns = ["x"]\nallow = ["y"]\n'
    cfg.write_text(head + '[[list]]\nname = "b"\naction = "note"\npatterns_from = "a.allow"\n')
    [_, b] = load_rules(cfg)
    assert [p.pattern for p in b.patterns] == ["y"]
    for bad in ('patterns_from = "c.allow"', 'patterns_from = "a"', 'patterns_from = "a.allow"\npatterns = ["z"]'):
        cfg.write_text(head + f'[[list]]\nname = "b"\naction = "note"\n{bad}\n')
        with pytest.raises(ConfigError, match="patterns_from|not both") as err:
            load_rules(cfg)
        assert str(cfg) in str(err.value)


def test_slurs_block_unless_reported(rules):
    assert "rules.slurs" in labels(rules, "shut up you fucking faggot")
    assert labels(rules, "he called me a tranny at school and I cried") == []
    assert labels(rules, "I'm queer and proud, and a bit of a dyke about it") == []
    assert labels(rules, "the boss found a chink in my argument") == []


# Written for Hearth: survivors telling what they were called, and the same words used as abuse.
@pytest.mark.parametrize(
    "text",
    [
        "'Faggot' was written on my locker in red pen",
        "Faggot. That's what my dad called me when I came out",
        "People used to shout 'spastic' at my sister in the park",
        "He used the n-word, nigger, and nobody in the office said a thing",
        "Being a kid and hearing chink every day wears you down",
        "he called me a f****t in front of the whole class",
    ],
)
def test_slurs_received_pass(rules, text):
    assert labels(rules, text) == []


@pytest.mark.parametrize(
    "text",
    [
        "I heard you, faggot",
        "hey faggot, heard you cried",
        'so your a "faggot" now, are you',
        "faggot. that's what I called him and he deserved it",
        "I hear you chinks are moving in",
        "shut up f*ggot",  # masked
        "you absolute n****r",
        "go away r e t a r d s",  # spelled out (joined by the normaliser)
    ],
)
def test_slurs_used_block_beside_reporting_words(rules, text):
    assert "rules.slurs" in labels(rules, text)


def test_terms_are_named_vocabularies(tmp_path):
    cfg = tmp_path / "rules.toml"
    cfg.write_text(
        """
[terms]
fruit = ['apples?', 'pears?']
produce = ['{fruit}', 'leeks?']

[[list]]
name = "produce"
action = "flag"
patterns = ['\\bhate {produce}\\b']
allow = ['\\bdon.t hate {fruit}']
"""
    )
    det = RulesDetector.from_file(cfg)
    assert labels(det, "I hate leeks") == ["rules.produce"]
    assert labels(det, "we hate pears") == ["rules.produce"]
    assert labels(det, "I hate plums") == []
    sig = det.detect([item("honestly I hate apples")])[0][0]
    assert "honestly I hate apples"[sig.evidence[0].start : sig.evidence[0].end] == "hate apples"


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ("[terms]\nfruit = ['{veg}']\n", 2, "{veg} is not a term defined above it"),
        ("# write fruit = ['...'] below\n[terms]\nfruit = ['{veg}']\n", 3, "not a term defined above it"),
        ("[terms]\nfruit = ['(apple']\n", 2, "term 'fruit': bad regex"),
        ("[terms]\nfruit = []\n", 2, "must be a non-empty list"),
        ("[terms]\nfruit = ['apple']\n", 7, "{veg} is not a term in [terms]"),
    ],
)
def test_bad_terms_refused_with_line_and_reason(tmp_path, body, line, reason):
    cfg = tmp_path / "rules.toml"
    cfg.write_text(body + "\n[[list]]\nname = \"x\"\naction = \"flag\"\npatterns = ['{fruit}', '{veg}']\n")
    with pytest.raises(ConfigError) as err:
        load_rules(cfg)
    assert err.value.file == str(cfg)
    assert err.value.line == line
    assert reason in err.value.reason


def test_a_member_reclaiming_a_slur_about_themselves_is_not_a_rules_block(rules):
    assert labels(rules, "I'm a proud faggot and this group gets it") == []
    assert "rules.slurs" in labels(rules, "my neighbour is a faggot")


def test_near_limits_patterns_to_windows_around_its_matches(tmp_path):
    cfg = tmp_path / "rules.toml"
    cfg.write_text(
        """
[terms]
fruit = ['apples?', 'pears?']

[[list]]
name = "fruit_hate"
action = "flag"
near = '\\b{fruit}\\b'
patterns = ['\\bhate (?:\\w+ ){0,3}{fruit}\\b', '\\bhate\\b']
"""
    )
    det = RulesDetector.from_file(cfg)
    padding = "the week was long. " * 500
    assert labels(det, padding + "and I hate green apples") == ["rules.fruit_hate"]
    assert labels(det, "I hate green apples " + padding) == ["rules.fruit_hate"]
    # no fruit anywhere: the list does not run at all, so even its fruit-free pattern stays silent
    assert labels(det, padding + "I hate mondays") == []
    # a fruit far away does not open a window over the hate
    assert labels(det, "pears. " + padding + "I hate mondays") == []
    (rl,) = det.lists
    text = "x " * 1000 + "pear" + " y" * 1000
    # "pear" is text[2000:2004]; the window ends at the first non-word character 400 after it
    assert rl.windows(text) == [(2000 - 400, 2004 + 400)]
    # a window never cuts a word: the long word after "pear" is taken whole, to the end of the text
    assert rl.windows("x" * 1000 + " pear " + "y" * 1000) == [(1001 - 400, 2006)]


def test_near_must_be_one_regex(tmp_path):
    cfg = tmp_path / "rules.toml"
    cfg.write_text('[[list]]\nname = "x"\naction = "flag"\nnear = ["a"]\npatterns = ["a"]\n')
    with pytest.raises(ConfigError, match="near must be one regex string"):
        load_rules(cfg)
