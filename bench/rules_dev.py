"""How the rule lists do on development data: the project-written sentences and Davidson's TRAINING part.

    .venv/bin/python bench/rules_dev.py [--list identity_hate --list slurs] [--show] [--pipeline]

Rules in config/moderation/rules.toml are written and checked here, never against HateCheck (which is
for evaluation only, bench/evaluate.py) nor against the Davidson held-out part (also evaluation). For
each group of bench/offline_scorer_project_set.py, and for the allow-list sentences below, it prints the
share of sentences the chosen lists fire on: abusive groups should be high, every other group zero. Then the share of Davidson training
tweets per class (hate / offensive / neither) they fire on. ``--show`` prints the project sentences
wrongly hit and missed, and the Davidson `neither` tweets hit (development data, so they may be read).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.davidson import CLASS_NAMES, DAVIDSON_CSV, load_davidson, split_indices  # noqa: E402
from bench.offline_scorer_project_set import ABUSIVE_GROUPS, GROUPS  # noqa: E402
from moderation.detectors.rules import load_rules  # noqa: E402
from moderation.normalize import normalize  # noqa: E402

# Development sentences for the allow-lists, written for Hearth in a support room's voice (none from an
# evaluation set): members quoting, reporting or rejecting hate must pass, and hate dressed up as
# someone else's words or as agreement with them must still fire.
COUNTER_SPEECH_DEV = [  # must not fire
    "Muslims are vermin. That's what my neighbour shouts at us every morning.",
    "Women are stupid, according to my father. He was wrong about so much.",
    "Immigrants are parasites, says the flyer that came through our door today.",
    "Gay people are disgusting. I heard that every single day growing up.",
    "If I hear one more person say refugees are vermin I'm going to scream",
    "Growing up I was taught that gay people are abominations",
    "We were raised to believe Travellers are thieves, and it took me years to unlearn it",
    "Stop telling me autistic people are dangerous, my son is the gentlest soul",
    "I refuse to accept that immigrants are a drain on anyone",
    "It's a myth that immigrants are criminals and the figures prove it",
    "I once believed Black people were dangerous because of the news, and I was so wrong",
    "My church preached that homosexuals are an abomination and I left",
    "The kids chanted 'Pakistanis are dirty' at my brother on the bus",
    "Every headline screams that migrants are criminals and my mum is scared to go out",
    "Disabled people are a burden - that's the message I got from every benefits form",
    "My grandad believed Pakistanis were dirty and I'm ashamed of him",
    "The comments under the news story all said refugees are scum and I had to stop reading",
    "I grew up hearing that trans people are freaks, so coming out took me until I was 40",
    "All my life men have told me women are worthless",
    "Apparently disabled people are useless, according to the man who shoved my wheelchair",
    "The bully's note said Jews are rats. I'm twelve. I don't know what to do",
    "Somebody online replied that trans women are predators and I've been shaking since",
    "My teacher used to joke that Mexicans are lazy and everyone laughed",
    "When my boss says immigrants are criminals I just freeze",
    "It's exhausting being told Muslims are terrorists every time there's news",
    "I'm tired of the lie that gay men are paedophiles",
    "They keep repeating that women are inferior and I'm done listening",
    "Why do people think disabled people are worthless?",
    "My ex used to scream that women are useless whenever dinner was late",
    "The graffiti on our wall says immigrants are vermin and the council hasn't removed it",
    "I've been called everything, and told gay people are sick, my whole life",
    "He wrote in the group chat that Black people are animals and nobody stopped him",
    "It hurts when strangers act like autistic people are stupid",
    "I was brought up to think Muslims are dangerous. I'm unlearning it",
    "Our neighbour's sign reads 'migrants are criminals', and I walk past it every day",
    "My sister thinks trans people are freaks and won't let me see my nephew",
    "Lots of people online claim that disabled people are lazy scroungers",
    "That idea, that refugees are parasites, nearly broke my dad",
    "Hearing my own mother say lesbians are disgusting was the worst day of my life",
    "The preacher on the corner yells that gay people deserve to burn",
    "I got a DM saying Jews should be gassed. I've reported it to the police",
    "Nobody should have to hear that their family are animals",
    "'Women are worthless' was carved into the desk at my school",
    "My coworkers laugh about how Indians are dirty and I'm Indian",
    "To anyone who told you disabled people are a burden: they were wrong",
    "It's not okay to say Roma people are thieves, and my family is Roma",
    "Imagine growing up being told women are property",
    "Is it normal that my dad keeps saying immigrants should be deported? It scares me",
    "I'm so angry that a politician said refugees are a plague",
    # slurs received, reported or named as the word itself
    "'Faggot' was written on my locker in red pen",
    "Faggot. That's what my dad called me when I came out",
    "The kids at school kept calling my brother a retard",
    "Someone spray-painted 'Paki go home' on our shop",
    "I was called a tranny so many times I stopped going out",
    "Every day at school: tranny, freak, weirdo. I'm still carrying it",
    "My stepdad's favourite word for me was retard",
    "People used to shout 'spastic' at my sister in the park",
    "He used the n-word, nigger, and nobody in the office said a thing",
    "Being a kid and hearing chink every day wears you down",
    "I keep hearing kids at my school say gay people are disgusting and I'm scared to come out",
]

DISGUISED_HATE_DEV = [  # must fire
    "Muslims are vermin. That's what I think and I won't apologise",
    "Women are stupid, according to me",
    "Immigrants are parasites, and everyone knows it",
    "Gay people are disgusting. I said what I said.",
    "Refugees are vermin and I'd say it to their faces",
    "Trans people are freaks, stop telling me otherwise",
    "I was right all along: Muslims are terrorists",
    "Face it, disabled people are a burden",
    "Black people are animals, my dad was right",
    "I believe Jews are evil",
    "Immigrants are criminals, the facts say so",
    "Gays are perverts. Deal with it.",
    "everyone knows immigrants are rats",
    "I'll say it: women are inferior",
    "Mexicans are lazy, no offence",
    "As my grandad always said, Jews are rats",
    "Like my dad says, immigrants are vermin",
    "Muslims are terrorists, as the news says",
    "The truth is Muslims are terrorists",
    "My take: women are worthless",
    "I'll tell you what: Muslims are terrorists",
    "Let me say it again, immigrants are vermin",
    "Muslims are terrorists, says everyone with a brain",
    # slurs used, however close to a reporting word
    "I heard you, faggot",
    "shut up you fucking faggot",
    "get out of here tranny",
    "nobody wants you here, retards",
    "I hear you chinks are moving in",
    "you're a faggot and everyone knows it",
    "hey faggot, heard you cried",
    "what did you say, faggot?",
    "that's what you are, a tranny",
    "faggot. that's what I called him and he deserved it",
]


def pipeline_on_allow_list_sentences(*, show: bool) -> None:
    from bench.evaluate import pipeline_blocker
    from moderation.detectors.toxicity import load_toxicity_detector

    detector, description = load_toxicity_detector(None, logging.getLogger("rules_dev"))
    block = pipeline_blocker("support", detector)
    if block is None:
        sys.exit("moderation.pipeline not importable")
    print(f"\nwhole pipeline (profile support; toxicity: {description}), blocked:")
    for name, sentences in (
        ("counter_speech_dev", COUNTER_SPEECH_DEV),
        ("disguised_hate_dev", DISGUISED_HATE_DEV),
    ):
        blocked = [s for s, b in zip(sentences, block(sentences), strict=True) if b]
        print(f"  {name:28s}{len(blocked):6d}/{len(sentences):<5d}")
        if show and name == "counter_speech_dev":
            for s in blocked:
                print(f"      BLOCKED: {s}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", action="append", help="rule list names (default: identity_hate, slurs)")
    ap.add_argument("--show", action="store_true", help="print false hits and misses")
    ap.add_argument(
        "--pipeline",
        action="store_true",
        help="also give the whole pipeline's block decision (support profile, offline scorer) on the "
        "allow-list sentences: the rules may let a report through and the toxicity model still block it",
    )
    args = ap.parse_args()
    names = args.list or ["identity_hate", "slurs"]
    lists = [rl for rl in load_rules() if rl.name in names]
    if len(lists) != len(names):
        sys.exit(f"unknown list in {names}; rules.toml has {[rl.name for rl in load_rules()]}")

    def fires(text: str) -> bool:
        norm = normalize(text).text
        return any(rl.hits(norm) for rl in lists)

    print(f"lists: {', '.join(names)}\n\nproject-written set (bench/offline_scorer_project_set.py):")
    groups = [(name, sentences, name in ABUSIVE_GROUPS) for name, sentences, _ in GROUPS]
    groups += [
        ("counter_speech_dev", COUNTER_SPEECH_DEV, False),
        ("disguised_hate_dev", DISGUISED_HATE_DEV, True),
    ]
    for name, sentences, abusive in groups:
        hit = [s for s in sentences if fires(s)]
        kind = "abusive" if abusive else "not abusive"
        print(
            f"  {name:28s}{kind:>12s}{len(hit):6d}/{len(sentences):<5d}{100 * len(hit) / len(sentences):6.1f}%"
        )
        if args.show:
            shown = [s for s in sentences if s not in hit] if abusive else hit
            for s in shown:
                print(f"      {'missed' if abusive else 'HIT'}: {s}")
    if args.pipeline:
        pipeline_on_allow_list_sentences(show=args.show)
    if not DAVIDSON_CSV.is_file():
        print(f"\n{DAVIDSON_CSV} not found; Davidson part skipped")
        return
    tweets = load_davidson()
    train, _ = split_indices(tweets)
    hits: Counter[int] = Counter()
    total: Counter[int] = Counter()
    for i in train:
        total[tweets[i].cls] += 1
        if fires(tweets[i].text):
            hits[tweets[i].cls] += 1
            if args.show and tweets[i].cls == 2:
                print(f"      neither HIT: {tweets[i].text[:140]}")
    print(f"\nDavidson training part ({len(train)} tweets; the held-out part is not read):")
    for cls, label in CLASS_NAMES.items():
        print(f"  {label:10s} fired on {100 * hits[cls] / total[cls]:5.1f}%  (n={total[cls]})")


if __name__ == "__main__":
    main()
