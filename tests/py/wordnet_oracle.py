"""wordnet_oracle.py OUT - NLTK's answers for test_wordnet.c.

Writes one line per query, tab-separated:
  set  <concept>  <synset name>  <concept set, space-separated>   for every concept in
       vg_random.json, a few plain words, and every 40th synset of data.noun;
  paths <synset name> <all hypernym paths, ';'-separated, names space-separated>
       for the same synsets.
The concept set is the reference's: the first longest hypernym path plus the word.
"""
import json
import os
import sys
import warnings

warnings.simplefilter("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wn_nltk  # noqa: E402

WORDS = ["chairs", "geese", "wolves", "Dogs", "buses", "boxes", "churches", "dishes", "women",
         "ladies", "men", "mice", "people", "glasses", "leaves", "knives", "buzzes", "trees",
         "traffic light", "ice cream", "teeth", "feet", "axes", "bases", "species"]

wn, tmp = wn_nltk.open_wordnet()
data = json.load(open("data/vg_random.json"))
concepts = sorted({o for im in data["images"] for o in im["objects"]}) + WORDS
with open("/usr/share/wordnet/data.noun") as f:
    offsets = [int(l.split(" ", 1)[0]) for l in f if not l.startswith(" ")]
extra = [wn.synset_from_pos_and_offset("n", o).name() for o in offsets[::40]]

with open(sys.argv[1], "w") as out:
    for c in concepts + extra:
        syn = wn_nltk.synset_of(wn, c)
        out.write("set\t%s\t%s\t%s\n" % (c, syn.name(), " ".join(wn_nltk.concept_set(wn, c))))
    for c in sorted({wn_nltk.synset_of(wn, c).name() for c in concepts}) + extra:
        paths = wn.synset(c).hypernym_paths()
        out.write("paths\t%s\t%s\n" % (c, ";".join(" ".join(s.name() for s in p) for p in paths)))
