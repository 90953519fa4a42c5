"""Project-written training sentences for the offline toxicity head (written for Hearth, not taken
from any dataset; in particular nothing here comes from HateCheck, which is for evaluation only).

Davidson's tweets know three classes (hate / offensive / neither); they cannot teach a head that
casual profanity or quoting abuse one suffered is not an insult, nor what a threat is. These
sentences say what a peer-support room looks like. Each group sets targets for some labels and
leaves the others out (``None``: not known, not trained on).

Two parts: hand-written groups (support talk, identity talk, quoted abuse, casual profanity, figures of
speech, insults, threats, group attacks) and generated groups, each template written here filled with
a seeded draw of groups (protected characteristics of the UK Equality Act and others): positive and
neutral talk about one's own and others' identities, negated attacks, counter-speech and quoted abuse,
reclaimed self-reference, against derogation, dehumanisation, threats and calls for exclusion aimed at
groups. ``bench/evaluate.py`` reports how close any of these comes to a HateCheck case.
"""

from __future__ import annotations

import random

# label -> target for every sentence of the group; labels not listed are left out of training.
ALL_ZERO = {
    "toxicity": 0.0,
    "severe_toxicity": 0.0,
    "obscene": 0.0,
    "threat": 0.0,
    "insult": 0.0,
    "identity_attack": 0.0,
}

SUPPORT_TALK = [  # everyday support-group speech: nothing to flag
    "thanks, I slept better last night",
    "I had a panic attack on the bus today but I used the breathing exercise and it passed",
    "Day 40 sober and I finally told my sister",
    "My mum died in March and some days I still reach for the phone to call her",
    "Does anyone else feel exhausted after therapy sessions?",
    "I relapsed last weekend and I feel ashamed, but I'm back",
    "Welcome to the group, glad you found us",
    "It's okay to not be okay, take your time",
    "I've been clean for two years now, it gets easier I promise",
    "My anxiety is through the roof before job interviews",
    "Grief comes in waves, today was a big one",
    "I started journaling like someone here suggested and it helps",
    "Can someone share the link to the Thursday session?",
    "My therapist says I should set boundaries with my father",
    "I miss my brother every single day",
    "Sending you a hug, you are not alone in this",
    "I'm proud of you for reaching out",
    "I couldn't get out of bed until noon, but I did shower",
    "The medication change is making me nauseous",
    "Happy birthday to our moderator!",
    "Honestly the waiting list for counselling is ridiculous",
    "I cried in the supermarket car park and that's fine",
    "I used to drink every night to fall asleep",
    "My kids don't know I go to meetings yet",
    "What helped you through the first winter after a loss?",
    "Three months without self-harm today, I wanted to tell someone",
    "My counsellor cancelled again and I feel a bit lost this week",
    "Does anyone have tips for the nights when the cravings are worst?",
    "I finally cleared out dad's wardrobe, it took me a year",
    "Thank you all for listening yesterday, it meant a lot",
    "I'm nervous about my first meeting in person on Saturday",
    "It's the anniversary of the accident tomorrow and I'm dreading it",
    "I went for a walk instead of drinking and it actually worked",
    "My partner doesn't understand my depression and we argued again",
    "Is it normal to feel angry at the person who died?",
    "I had a good day, which feels strange to say",
    "The hospital discharged me this morning, I'm home",
    "Please be gentle with yourself tonight",
    "I keep blaming myself for not seeing the signs",
    "Our baby would have been two this week",
    "I told my GP the truth about my drinking for the first time",
    "Anyone else find Sundays the hardest?",
    "I'm back at work part time and it's overwhelming but okay",
    "I've been eating properly for a whole week, small wins",
    "Reading everyone's stories here makes me feel less broken",
]

IDENTITY_TALK = [  # people talking about their own or others' identities, respectfully
    "As a gay man I was scared to come out to my parents, but they surprised me",
    "I'm a trans woman and this group is the first place I've felt safe",
    "Being a Muslim in a small town can feel lonely sometimes",
    "I'm Black and my therapist actually gets it, which matters so much",
    "As a disabled person, the stairs at the meeting venue are a problem",
    "I moved here as an immigrant ten years ago and grief hits differently far from home",
    "My girlfriend and I just celebrated five years together",
    "Women deserve to be listened to when they talk about pain",
    "I'm autistic and loud rooms overwhelm me",
    "My wife is Jewish and we're raising the kids with both traditions",
    "Refugees in my neighbourhood run a lovely community kitchen",
    "I'm bisexual and still figuring out how to tell my friends",
    "Deaf people should have captions at every session",
    "Being a mixed-race kid I never felt I belonged anywhere",
    "Gay people have every right to be here and to be happy",
    "Trans people are just people trying to live their lives",
    "Muslims in our group organised the fundraiser last month",
    "I love being a woman in engineering even when it's hard",
    "As a Black woman I often feel I have to be strong for everyone",
    "I'm gay and my church family turned their backs on me, but this group didn't",
    "Being an older trans man, I transitioned at fifty and have no regrets",
    "I'm a Muslim convert and my parents are still adjusting",
    "Growing up Roma, people assumed the worst about my family",
    "I use a wheelchair and I'm tired of people talking to my carer instead of me",
    "As an Asian immigrant, my mum never talked about mental health",
    "I'm a lesbian and I lost my wife last year",
    "Jewish holidays are hard since my grandmother passed",
    "I'm non-binary and being misgendered at the clinic wears me down",
    "Many refugees carry trauma that nobody asks them about",
    "Gay and lesbian couples grieve the same as anyone else",
    "Disabled people know their own needs best",
    "I'm proud to be Black and proud to be sober",
]

QUOTED_ABUSE = [  # reporting abuse suffered or condemning it: never an attack by the speaker
    "My dad used to call me worthless and stupid every day",
    "My ex told me nobody would ever love me and I believed him for years",
    "Someone at school called me a freak and I still hear it",
    "He screamed that I was a useless waste of space",
    "A man on the train shouted at me to go back to my own country",
    "They called me a dyke at work and my manager laughed",
    "My mother said I was a disgusting fat pig, I was eleven",
    "People online told me to kill myself and I want to talk about it",
    "When I came out, my uncle said people like me are sick",
    "Kids at school said my family were terrorists because we're Muslim",
    "My abuser threatened to hurt me if I left",
    "Saying that disabled people are a burden is cruel and wrong",
    "It is never okay to call someone a slur",
    "Hate against trans people has no place in this community",
    "If someone tells you you're worthless, they are wrong",
    "I reported the guy who kept sending me racist messages",
    "My stepfather used to say I'd end up dead in a ditch like my mother",
    "Being called names for being gay made me hate myself for years",
    "My brother kept telling me I was an ugly waste of space until I believed it",
    "My boss called me a stupid cow in front of everyone",
    "He used to say I was a pathetic excuse for a mother",
    "The bullies wrote 'freak' on my locker every week",
    "Someone messaged me that people like me should be put down",
    "My ex threatened to burn the house down if I left, and I left anyway",
    "My mum called me a whore when I got pregnant at sixteen",
    "I still flinch when someone raises their voice, he used to say he would kill me",
    "At school they told me Muslims like me should go back where we came from",
    "Strangers called me a tranny in the street and I froze",
    "My father said gay people were an abomination, and I was listening from the stairs",
    "Those words, 'you're worthless', still echo in my head",
    "Calling immigrants parasites is exactly the kind of talk that hurt my family",
    "Nobody deserves to be called disgusting for who they love",
    "When someone says women are stupid, I think of my mother and how wrong that is",
    "Telling someone to kill themselves is never a joke",
    "I was told I'd be better off dead, and I'm here to say that was a lie",
    "They spat at my grandmother and called her a dirty foreigner",
    "People who call disabled people useless have never met my son",
    "My foster carer said I was trash like my real parents",
]

CASUAL_PROFANITY = [  # profanity not aimed at anyone: obscene, but not an insult or threat
    "fuck, I forgot my appointment again",
    "this week has been absolute shit",
    "holy shit I actually did it, I went to the meeting",
    "damn, I didn't expect to cry that hard",
    "the bloody bus was late again and I was so anxious",
    "I'm so fucking tired of feeling like this",
    "shit happens, I'll try again tomorrow",
    "what the hell is wrong with my sleep lately",
    "I feel like crap today, not gonna lie",
    "fuck anxiety honestly",
    "that was a shitty day but I'm still here",
    "pissed off at my landlord, but breathing through it",
    "fucking hell, the forms for benefits are a nightmare",
    "oh shit, I forgot it was tonight",
    "bloody hell, I'm proud of myself",
    "I was shit scared before the appointment",
    "this fucking insomnia is back",
    "what a crap week, honestly",
    "fuck yes, six months clean",
    "I feel like shit but I showed up",
]

FIGURES_OF_SPEECH = [  # violent words, no threat
    "this commute is killing me",
    "I could murder a cup of tea right now",
    "my kids are going to be the death of me",
    "that joke killed me, I was crying laughing",
    "I'm dying to know how your interview went",
    "the exam absolutely destroyed me",
    "we smashed our fundraising target",
    "I'd kill for a full night's sleep",
    "my back is killing me after gardening",
    "I'm going to attack this week with a plan",
    "this heat is murder on my migraines",
    "I nearly died of embarrassment when I cried at work",
    "my therapist and I are going to kill this anxiety one step at a time",
    "the deadline is going to be the end of me",
    "I was shot down when I asked for a raise",
]

DIRECTED_INSULTS = [  # abuse aimed at another person in the room
    "you are a worthless piece of trash",
    "you're pathetic and everyone here knows it",
    "shut up you stupid idiot",
    "nobody cares about you, you attention-seeking loser",
    "you are the dumbest person I have ever met",
    "you're a disgusting waste of oxygen",
    "go away, you fat ugly cow",
    "what a moron, no wonder your family left you",
    "you deserve to feel like this, you're a joke",
    "you useless pathetic failure",
    "stop whining, you spineless crybaby",
    "you're so ugly it's embarrassing",
    "fuck you, you stupid bitch",
    "you are a brainless clown",
    "everyone here thinks you're a creep",
    "you idiot, you ruin every thread you post in",
    "you're a pathetic drunk and you'll always be one",
    "shut your mouth, nobody asked for your stupid opinion",
    "you are a vile excuse for a human being",
    "honestly you're too stupid to help",
    "get lost, you whiny little rat",
    "you make me sick, you filthy liar",
    "you're an ugly slut and everybody knows it",
    "what kind of idiot posts this crap",
    "you are a total waste of space",
    "go cry somewhere else, you pathetic loser",
    "you're a fat lazy slob and that's why you're alone",
    "you're mentally deficient, stop posting",
    "your mother should be ashamed of raising such a moron",
    "you absolute scumbag",
]

THREATS = [  # intent to harm another person
    "I will find where you live and hurt you",
    "I'm going to kill you",
    "you better watch your back, I know where you work",
    "I'll beat you until you can't stand up",
    "keep talking and I'll break your legs",
    "I'm going to make you suffer for this",
    "someone should put a bullet in you",
    "I'll burn your house down with you in it",
    "wait till I catch you outside, you're dead",
    "I will hunt you down",
    "I'm coming for you and your family",
    "I'm going to smash your face in",
    "post that again and I'll stab you",
    "I know your address, sleep with one eye open",
    "I'll make sure you never walk again",
    "one day soon I'm going to hurt you badly",
    "I'll strangle you with my own hands",
    "you and your kids won't be safe from me",
    "I'm going to shoot you the next time I see you",
    "you'll end up in hospital if you post again",
]

GROUP_ATTACKS = [  # dehumanising attacks on people for who they are
    "those people are vermin and should be wiped out",
    "immigrants are parasites ruining this country",
    "gays are disgusting perverts",
    "women are too stupid to be trusted with anything",
    "disabled people are a drain and should not exist",
    "all Muslims are terrorists",
    "trans people are mentally ill freaks",
    "Black people are animals",
    "Jews control everything and deserve what they get",
    "refugees are filth, send them all back",
    "people like you should never have been born",
    "your kind don't belong in this country",
    "gay people are a disease on society",
    "women belong in the kitchen and should shut up",
    "Muslims are savages, every one of them",
    "trans people are disgusting and should be locked away",
    "immigrants are rats that breed and steal",
    "disabled people are useless leeches",
    "honestly the Black families on my street are subhuman and I want them gone",
    "Jews are vermin",
    "we should get rid of all the refugees for good",
    "those queers make me want to throw up",
    "foreigners are dirty and stupid",
    "gypsies are thieves and scum",
]

# --------------------------------------------------------------------------------------------------
# Generated part: sentences about groups of people, composed from templates written for Hearth.
#
# Every template and word list below was written for this project from what peer-support rooms and
# real abuse look like (nothing copied, paraphrased or templated from HateCheck or any other test
# set). Each template is filled with a few groups drawn with a fixed seed, so the set is the same on
# every run. ``template_key`` names the template a sentence came from: the training script puts all
# sentences of one template in the same cross-fitting fold, so the validation folds measure phrasing
# the head has not seen, not the same sentence with another group name.

# (plural, one person with article, "I am ..." self-description); protected characteristics of the
# UK Equality Act 2010 and other groups abuse is aimed at.
IDENTITIES: tuple[tuple[str, str, str], ...] = (
    ("women", "a woman", "I'm a woman"),
    ("men", "a man", "I'm a man"),
    ("girls", "a girl", "I'm a girl"),
    ("trans people", "a trans person", "I'm trans"),
    ("trans women", "a trans woman", "I'm a trans woman"),
    ("trans men", "a trans man", "I'm a trans man"),
    ("non-binary people", "a non-binary person", "I'm non-binary"),
    ("gay people", "a gay person", "I'm gay"),
    ("gay men", "a gay man", "I'm a gay man"),
    ("lesbians", "a lesbian", "I'm a lesbian"),
    ("bisexual people", "a bisexual person", "I'm bisexual"),
    ("queer people", "a queer person", "I'm queer"),
    ("Black people", "a Black person", "I'm Black"),
    ("Asian people", "an Asian person", "I'm Asian"),
    ("Chinese people", "a Chinese person", "I'm Chinese"),
    ("Indians", "an Indian", "I'm Indian"),
    ("Pakistanis", "a Pakistani", "I'm Pakistani"),
    ("Arabs", "an Arab", "I'm Arab"),
    ("Latinos", "a Latino", "I'm Latino"),
    ("Mexicans", "a Mexican", "I'm Mexican"),
    ("Nigerians", "a Nigerian", "I'm Nigerian"),
    ("Polish people", "a Polish person", "I'm Polish"),
    ("Romanians", "a Romanian", "I'm Romanian"),
    ("Irish Travellers", "a Traveller", "I'm an Irish Traveller"),
    ("Roma people", "a Roma person", "I'm Roma"),
    ("Indigenous people", "an Indigenous person", "I'm Indigenous"),
    ("mixed-race people", "a mixed-race person", "I'm mixed race"),
    ("Jews", "a Jew", "I'm Jewish"),
    ("Jewish people", "a Jewish person", "I'm Jewish"),
    ("Muslims", "a Muslim", "I'm Muslim"),
    ("Christians", "a Christian", "I'm a Christian"),
    ("Catholics", "a Catholic", "I'm Catholic"),
    ("Hindus", "a Hindu", "I'm Hindu"),
    ("Sikhs", "a Sikh", "I'm Sikh"),
    ("atheists", "an atheist", "I'm an atheist"),
    ("immigrants", "an immigrant", "I'm an immigrant"),
    ("migrants", "a migrant", "I'm a migrant"),
    ("refugees", "a refugee", "I'm a refugee"),
    ("asylum seekers", "an asylum seeker", "I'm an asylum seeker"),
    ("foreigners", "a foreigner", "I'm a foreigner here"),
    ("disabled people", "a disabled person", "I'm disabled"),
    ("wheelchair users", "a wheelchair user", "I use a wheelchair"),
    ("autistic people", "an autistic person", "I'm autistic"),
    ("deaf people", "a deaf person", "I'm deaf"),
    ("blind people", "a blind person", "I'm blind"),
    ("people with schizophrenia", "someone with schizophrenia", "I have schizophrenia"),
    (
        "people with learning disabilities",
        "someone with a learning disability",
        "I have a learning disability",
    ),
    ("old people", "an old person", "I'm in my seventies"),
    ("pensioners", "a pensioner", "I'm a pensioner"),
    ("teenagers", "a teenager", "I'm a teenager"),
    ("pregnant women", "a pregnant woman", "I'm pregnant"),
    ("single mums", "a single mum", "I'm a single mum"),
    ("married couples", "a married person", "I'm married"),
    ("divorced people", "a divorced person", "I'm divorced"),
)

BAD_ADJ = (
    "disgusting",
    "filthy",
    "worthless",
    "subhuman",
    "evil",
    "vile",
    "stupid",
    "dirty",
    "pathetic",
    "inferior",
    "sick in the head",
    "a danger to our children",
    "born criminals",
    "repulsive",
    "brainless",
    "useless",
    "a waste of space",
    "less than human",
    "freaks of nature",
    "degenerate",
)
DEHUMAN = (
    "vermin",
    "rats",
    "cockroaches",
    "parasites",
    "animals",
    "a plague",
    "a disease",
    "filth",
    "scum",
    "savages",
    "trash",
    "leeches",
    "a cancer on this country",
    "an infestation",
    "maggots",
    "apes",
    "garbage",
    "pigs",
    "a virus",
    "mongrels",
)
HARM = (
    "wiped out",
    "shot",
    "hanged",
    "gassed",
    "beaten until they learn",
    "exterminated",
    "put down like dogs",
    "burned out of their homes",
    "lined up and shot",
    "strung up",
    "drowned",
    "killed off",
    "sterilised",
    "locked in camps",
    "run over",
)
EXCLUDE = (
    "banned from this country",
    "kept away from our children",
    "fired from every job",
    "stopped from voting",
    "thrown out of our neighbourhood",
    "refused treatment at hospitals",
    "kept out of our schools",
    "sent back where they came from",
    "banned from public places",
    "kicked out of this group",
    "denied housing",
    "barred from marrying",
)
GOOD = (
    "kind",
    "brave",
    "wonderful",
    "valued members of our community",
    "just as human as anyone",
    "welcome here",
    "strong",
    "loving parents",
    "great friends",
    "worthy of respect",
    "loved",
    "our neighbours and our friends",
)
FILL = {"{BAD}": BAD_ADJ, "{DEH}": DEHUMAN, "{HARM}": HARM, "{EXCL}": EXCLUDE, "{GOOD}": GOOD}

# -- abuse against groups (identity attacks); threats and calls for violence also carry "threat"
GROUP_DEROGATION_T = (
    "honestly {P} are {BAD} and everyone knows it",
    "I'm sorry but {P} are just {BAD}",
    "{P} are {DEH}, plain and simple",
    "every one of those {P} is {BAD}",
    "can't stand {P}, they're {DEH}",
    "I hate {P} so much it makes me sick to my stomach",
    "{P} make me want to throw up, every single one",
    "the world would be a better place without any {P} in it",
    "never trust {S}, they are all liars and cheats",
    "{S} will always be {BAD}, no matter what they pretend",
    "{P} aren't real people, they're {DEH}",
    "{P} will never be equal to normal people",
    "there is nothing lower than {S}",
    "{P} don't deserve an ounce of respect from anyone",
    "{P} ruin every place they move into",
    "why are {P} always so {BAD}",
    "keep {P} away from me, they're {DEH}",
    "{P} are a burden on the rest of us and always will be",
    "I will never accept {P} as human beings",
    "it's a simple fact that {P} are {BAD}",
    "all {P} are the same, {BAD} to the core",
    "{P}? {DEH}, the whole lot of them",
    "being anywhere near {P} disgusts me",
    "lol {P} are so {BAD}, can't believe people defend them",
    "the problem with this country is {P}, they are {DEH}",
    "{P} should be ashamed to even exist",
    "you can always tell {S}, they stink",
    "{P} breed like {DEH} and take everything",
    "God made a mistake with {P}",
    "no decent person would ever marry {S}",
    "the only good {P} are the ones who stay silent",
    "I'm not racist or anything, {P} are just naturally {BAD}",
    "{P} like you are {DEH}",
    "you're just another one of those {BAD} {P}",
    "typical {S}, too {BAD} to understand anything",
)
GROUP_THREAT_T = (
    "{P} should all be {HARM}",
    "I want to see every last one of those {P} {HARM}",
    "someone needs to make sure the {P} round here get {HARM}",
    "I'm going to hurt the next one of those {P} I see",
    "if I run into any {P} tonight I'll beat them bloody",
    "we should round up all the {P} and get rid of them for good",
    "let's go and burn down the place where those {P} meet",
    "{P} deserve to die, all of them",
    "I'd happily kill any {P} who comes near my street",
    "it's time we took up arms against {P}",
    "mark my words, {P} in this town will pay in blood",
    "I'm bringing a knife for the {P} at the community centre",
    "the day is coming when {P} will be {HARM}",
)
GROUP_EXCLUSION_T = (
    "{P} should be {EXCL}",
    "kick every single one of the {P} out, they don't belong here",
    "we don't want any {P} in this group, get out",
    "{P} have no place in a decent society",
    "{P} shouldn't be allowed to have children or vote",
    "this country would be better if all {P} were {EXCL}",
    "no {P} allowed here, this room is for normal people",
    "why are we letting {P} anywhere near our kids",
)

# -- speech about groups that is not abuse: positive, neutral, negated, counter-speech, quoting
IDENTITY_POSITIVE_T = (
    "{P} are {GOOD}",
    "I'm so grateful for the {P} in my life",
    "so many {P} here helped me get through the worst year of my life",
    "{P} deserve the same kindness as anyone else",
    "{P} in this group are so brave for sharing their stories",
    "{I} and proud of it",
    "{I}, and this group is the first place I've felt accepted",
    "{I} and I can finally say that out loud without shaking",
    "I'm glad that {P} can find support here",
    "{P} have every right to be happy and safe",
    "{P} bring so much to our neighbourhood",
    "shout out to all the {P} in this space, you matter",
    "my best friend is {S} and I adore her",
    "my closest mate is {S} and he's the kindest person I know",
    "I love how many {P} come to the Tuesday meeting",
    "{I} and my recovery is going really well",
    "being around other {P} who understand has helped me heal",
    "{P} are just people trying to get through life like the rest of us",
    "we need more {P} running support groups, honestly",
    "I'm not {S} myself but I stand with {P} all the way",
)
IDENTITY_NEUTRAL_T = (
    "are there any {P} here who could share how they found a therapist?",
    "{I} and I'm looking for others who get it",
    "I read an article about how {P} experience grief",
    "there's a peer group for {P} on Thursday evenings if anyone wants the link",
    "my new neighbours are {P}, they seem nice",
    "{I}, so people sometimes ask me questions about it",
    "how do {P} in this group handle family gatherings?",
    "the report said {P} often wait longer for mental health care",
    "my counsellor works a lot with {P}",
    "{I}; could that affect which medication they give me?",
    "my sister married {S} last spring",
    "I grew up around a lot of {P}",
    "the charity runs a helpline specifically for {P}",
    "is this room okay for {P} or is there a separate one?",
    "{I} and today was a rough day at work",
    "my GP is {S} and she's really patient with me",
)
NEGATED_T = (
    "{P} are not {BAD}, that's an ugly lie",
    "nobody should ever call {P} {DEH}",
    "I would never say that {P} are {BAD}",
    "I don't hate {P}, I never have and never will",
    "it's simply not true that {P} are {BAD}",
    "{P} are not {DEH}, they're people like you and me",
    "I used to think {P} were {BAD}, I was wrong and I'm ashamed of it",
    "no, {P} are not a threat to anyone",
    "{P} should never be {HARM}, whatever anyone says",
    "{P} should not be {EXCL}, that would be cruel",
    "I don't believe for a second that {P} are {BAD}",
    "there's nothing wrong with being {S}",
    "none of the {P} I know are {BAD}",
    "{P} aren't {DEH} and saying so is disgusting",
    "I'm not going to pretend {P} are {BAD} to fit in with my family",
    "{P} don't deserve hate, they deserve respect",
)
COUNTER_QUOTE_T = (
    "someone in my class said '{P} are {BAD}' and I told the teacher",
    "my dad keeps saying {P} are {DEH} and it makes me so angry",
    "when people say {P} should be {HARM}, that's hate and I won't stay quiet",
    "I saw a post claiming {P} are {BAD}; I reported it straight away",
    "\"{P} are {DEH}\" - that's what someone sprayed on our door. I'm still shaking",
    "a man on the bus shouted that {P} are {BAD} and nobody said anything",
    "saying {P} are {BAD} is bigotry, full stop",
    "I'm so tired of hearing that {P} should be {EXCL}",
    "my coworker joked that {P} should be {HARM} and I went to HR",
    "if you think {P} are {DEH}, this community isn't for you",
    "comments like '{P} are {BAD}' hurt real people in this group",
    "{I}, and being told we're {BAD} every day wore me down",
    "my uncle posted that {P} are {DEH} and I blocked him",
    "people at school said {P} are {BAD}, and I believed it about myself for years",
    "{I} and someone wrote '{P} are {DEH}' under my photo",
    "whoever wrote that {P} should be {HARM} needs to be banned",
    "calling {P} {DEH} is dehumanising and it's how violence starts",
    "I got a message saying {P} like me are {DEH}; the mods removed it, thank you",
    "I can't believe people still say that {P} are {BAD} in 2024",
    "my therapist helped me see that the people who called {P} {BAD} were the problem",
)

# Reclaimed words used by people about themselves and their own communities, and words that can be
# slurs used in a neutral, self-describing or educational way.
RECLAIMED_SELF = [
    "I'm queer and I've never felt more like myself",
    "queer and sober, one year today",
    "we're a bunch of queers who meet for coffee after group, come along",
    "as a big old dyke I can tell you the lesbian bar scene saved my life",
    "dyke march this weekend, who's coming?",
    "my crip friends and I started a disability peer group",
    "I call myself a crip, it's my word to use",
    "mad pride: I'm mad and I'm not ashamed anymore",
    "being a queer kid in a small village was hard but I made it",
    "queer elders in this group have taught me so much",
    "fat and happy, and done apologising for my body",
    "I'm a fat woman and I'm allowed to take up space",
    "the queer youth group meets on Fridays",
    "I'm a proud queer Muslim and both parts of me are real",
    "we reclaimed the word queer so nobody could use it against us again",
    "me and my girlfriend are the token dykes of the office and we love it",
    "call me a crip, I don't mind, it's a community thing",
    "I'm bi, I'm queer, I'm tired, and I'm still here",
    "our queer book club is reading something lovely this month",
    "a friend of mine says she's a proud dyke and I think that's brilliant",
    "I'm a mad person with a diagnosis and a sense of humour",
    "some of us autistics like to info-dump, so here goes",
    "hey fellow queers, anyone else find Pride month overwhelming?",
    "trans and thriving, a year on hormones today",
    "the word queer was thrown at me as a kid, now I wear it like a badge",
]

DIRECTED_INSULT_T = (  # abuse aimed at the person being addressed
    "you are such a {INS}",
    "shut up, you {INS}",
    "nobody wants you here, you {INS}",
    "honestly you're the biggest {INS} in this group",
    "get lost you absolute {INS}",
    "what a {INS} you are, seriously",
    "you're nothing but a {INS} and you always will be",
    "only a {INS} like you would post that",
)
INSULT_NOUNS = (
    "idiot",
    "moron",
    "loser",
    "pathetic excuse for a person",
    "waste of space",
    "clown",
    "freak",
    "creep",
    "failure",
    "disgusting pig",
    "joke",
    "lowlife",
    "scumbag",
    "worthless nobody",
    "embarrassment",
    "brainless twit",
    "coward",
    "parasite",
)
THREAT_T = (  # violence promised to the person being addressed
    "I'm going to {VIOL} you",
    "say that again and I will {VIOL} you",
    "I know where you live and I'm going to {VIOL} you",
    "one more post and I'll find you and {VIOL} you",
    "watch yourself, I will {VIOL} you when I see you",
    "you'd better hide, because I'm going to {VIOL} you",
)
VIOLENCE = (
    "kill",
    "stab",
    "hurt",
    "beat the hell out of",
    "break every bone in",
    "strangle",
    "shoot",
    "smash the face of",
    "make an example of",
    "end",
)


def _fill(template: str, rng: random.Random, identity: tuple[str, str, str] | None) -> str:
    text = template
    if identity is not None:
        plural, one, i_am = identity
        text = text.replace("{P}", plural).replace("{S}", one).replace("{I}", i_am)
    for slot, words in FILL.items():
        while slot in text:
            text = text.replace(slot, rng.choice(words), 1)
    for slot, words in (("{INS}", INSULT_NOUNS), ("{VIOL}", VIOLENCE)):
        while slot in text:
            text = text.replace(slot, rng.choice(words), 1)
    return text[0].upper() + text[1:] if rng.random() < 0.5 else text


def _expand(name: str, templates: tuple[str, ...], per_template: int) -> list[tuple[str, str]]:
    """(sentence, template key) for ``per_template`` fillings of every template, seeded by name."""
    rng = random.Random(f"hearth-offline-scorer/{name}")
    out: list[tuple[str, str]] = []
    for k, template in enumerate(templates):
        group_slot = any(s in template for s in ("{P}", "{S}", "{I}"))
        identities = rng.sample(IDENTITIES, per_template) if group_slot else [None] * per_template
        seen: set[str] = set()
        for identity in identities:
            text = _fill(template, rng, identity)
            if text not in seen:
                seen.add(text)
                out.append((text, f"{name}/{k}"))
    return out


IDENTITY_ATTACK = {
    "toxicity": 1.0,
    "identity_attack": 1.0,
    "threat": 0.0,
    "severe_toxicity": None,
    "insult": None,
}
IDENTITY_THREAT = {
    "toxicity": 1.0,
    "identity_attack": 1.0,
    "threat": 1.0,
    "severe_toxicity": 1.0,
    "insult": None,
}
NOT_AN_ATTACK = {**ALL_ZERO, "toxicity": None, "obscene": None}

GENERATED: list[tuple[str, list[tuple[str, str]], dict[str, float | None]]] = [
    ("group_derogation", _expand("group_derogation", GROUP_DEROGATION_T, 8), IDENTITY_ATTACK),
    ("group_threats", _expand("group_threats", GROUP_THREAT_T, 8), IDENTITY_THREAT),
    ("group_exclusion", _expand("group_exclusion", GROUP_EXCLUSION_T, 8), IDENTITY_ATTACK),
    ("identity_positive", _expand("identity_positive", IDENTITY_POSITIVE_T, 8), dict(ALL_ZERO)),
    ("identity_neutral", _expand("identity_neutral", IDENTITY_NEUTRAL_T, 8), dict(ALL_ZERO)),
    ("negated_attacks", _expand("negated_attacks", NEGATED_T, 8), NOT_AN_ATTACK),
    ("counter_speech", _expand("counter_speech", COUNTER_QUOTE_T, 8), NOT_AN_ATTACK),
    ("reclaimed_self", [(s, s) for s in RECLAIMED_SELF], NOT_AN_ATTACK),
    (
        "directed_insults_generated",
        _expand("directed_insults_generated", DIRECTED_INSULT_T, 8),
        {"toxicity": 1.0, "insult": 1.0, "threat": 0.0, "identity_attack": 0.0},
    ),
    (
        "threats_generated",
        _expand("threats_generated", THREAT_T, 8),
        {"toxicity": 1.0, "threat": 1.0, "identity_attack": 0.0, "insult": None},
    ),
]


# (name, sentences, targets) groups; a weight per sentence is applied by the training script.
GROUPS: list[tuple[str, list[str], dict[str, float | None]]] = [
    ("support_talk", SUPPORT_TALK, dict(ALL_ZERO)),
    ("identity_talk", IDENTITY_TALK, dict(ALL_ZERO)),
    (
        "quoted_abuse",
        QUOTED_ABUSE,
        {**ALL_ZERO, "toxicity": None, "obscene": None},
    ),
    (
        "casual_profanity",
        CASUAL_PROFANITY,
        {**ALL_ZERO, "obscene": 1.0, "toxicity": None},
    ),
    ("figures_of_speech", FIGURES_OF_SPEECH, dict(ALL_ZERO)),
    (
        "directed_insults",
        DIRECTED_INSULTS,
        {"toxicity": 1.0, "insult": 1.0, "threat": 0.0, "identity_attack": 0.0},
    ),
    (
        "threats",
        THREATS,
        {"toxicity": 1.0, "threat": 1.0, "identity_attack": 0.0},
    ),
    (
        "group_attacks",
        GROUP_ATTACKS,
        {"toxicity": 1.0, "identity_attack": 1.0, "threat": 0.0},
    ),
]

GROUPS += [(name, [text for text, _ in pairs], targets) for name, pairs, targets in GENERATED]

TEMPLATE_KEY: dict[str, str] = {text: key for _, pairs, _ in GENERATED for text, key in pairs}
"""Generated sentence -> the template it came from (hand-written sentences are their own template)."""

ABUSIVE_GROUPS = (
    "directed_insults",
    "threats",
    "group_attacks",
    "group_derogation",
    "group_threats",
    "group_exclusion",
    "directed_insults_generated",
    "threats_generated",
)
"""Groups of abuse aimed at others; every other group is non-abusive (must never be blocked)."""
