"""Deterministic synthetic catalog and shoppers: the embedded default dataset.

Every title is "STYLE COLOUR THEME MATERIAL NOUN" (``FACETS``). Shoppers have tastes over
those words (a sparse preference over each facet's values), over leaf categories and over a
price level; each session they pick a category from their taste, then items from it weighted
by how much they like the words in the titles, a mild trend per word, a small residual appeal
no title expresses, and price fit. Views sometimes lead to carts and purchases. The same seed
gives the same dataset on every machine.

Synthetic figures show that each stage does its job on the embedded default; they are never
a quality claim (docs/evaluation.md reports real datasets only).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from shared.data.types import (
    EVENT_ADD_TO_CART,
    EVENT_PURCHASE,
    EVENT_VIEW,
    CatalogItem,
    Dataset,
    Interaction,
)

TAXONOMY: dict[str, dict[str, list[str]]] = {
    "home": {
        "kitchen": ["mug", "teapot", "cutting board", "chef knife", "spice rack", "salad bowl"],
        "decor": ["candle", "photo frame", "wall clock", "vase", "cushion", "wall sign"],
        "garden": ["watering can", "plant pot", "garden rake", "bird feeder", "hose reel"],
    },
    "fashion": {
        "bags": ["tote bag", "backpack", "shoulder bag", "wallet", "duffel bag"],
        "jewellery": ["necklace", "bracelet", "earrings", "ring", "brooch"],
        "accessories": ["scarf", "umbrella", "sunglasses", "belt", "hat"],
    },
    "electronics": {
        "audio": ["headphones", "earbuds", "bluetooth speaker", "soundbar", "turntable"],
        "computing": ["laptop stand", "keyboard", "wireless mouse", "usb hub", "monitor"],
        "phones": ["phone case", "charger", "power bank", "screen protector", "phone stand"],
    },
    "toys": {
        "games": ["board game", "jigsaw puzzle", "card game", "chess set", "dominoes"],
        "outdoor": ["kite", "frisbee", "water pistol", "skipping rope", "football"],
        "crafts": ["paint set", "crayons", "sticker book", "modelling clay", "bead kit"],
    },
    "grocery": {
        "tea & coffee": ["green tea", "espresso beans", "herbal tea", "ground coffee", "chai"],
        "snacks": ["dark chocolate", "trail mix", "crackers", "shortbread", "popcorn"],
        "pantry": ["olive oil", "pasta", "honey", "rice", "sea salt"],
    },
}
# The words a title is made of besides its noun, one value per facet: a shopper's taste is a
# preference over these words, so what a shopper likes is written in the titles they buy (as
# in real catalogues: "VINTAGE RED CERAMIC MUG") and a text model can learn it.
FACETS: dict[str, list[str]] = {
    "style": [
        "vintage",
        "classic",
        "modern",
        "rustic",
        "retro",
        "minimalist",
        "boho",
        "handmade",
        "deluxe",
        "travel",
    ],
    "colour": ["red", "blue", "green", "pink", "black", "white", "ivory", "grey", "yellow", "teal"],
    "material": [
        "wooden",
        "ceramic",
        "cotton",
        "leather",
        "glass",
        "bamboo",
        "linen",
        "steel",
        "wool",
        "recycled",
    ],
    "theme": [
        "floral",
        "striped",
        "polka dot",
        "starry",
        "ocean",
        "forest",
        "geometric",
        "animal",
        "tartan",
        "folk",
    ],
}
# Title word order: style, colour, theme, material, noun.
TITLE_ORDER = ("style", "colour", "theme", "material")
# How concentrated a shopper's taste over one facet is (Dirichlet concentration: small = one
# or two favourite words), and the share of it spread evenly over every word, so an unfavoured
# word is still bought, only less often.
TASTE_CONCENTRATION = 0.3
TASTE_FLOOR = 0.35
# Spread of the item-level appeal that no title expresses (log-normal sigma): small, so the
# words carry most of why an item is chosen.
RESIDUAL_APPEAL_SIGMA = 0.25
PRICE_LEVEL = {"home": 18.0, "fashion": 30.0, "electronics": 55.0, "toys": 14.0, "grocery": 6.0}


def generate(
    n_items: int = 2000,
    n_users: int = 500,
    sessions_per_user: float = 6.0,
    seed: int = 7,
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    days: int = 180,
) -> Dataset:
    """Build the dataset; every random draw comes from one ``seed``-ed generator."""
    if n_items < 1 or n_users < 1:
        raise ValueError("n_items and n_users must be positive")
    rng = np.random.default_rng(seed)
    leaves = [(top, mid, nouns) for top, mids in TAXONOMY.items() for mid, nouns in mids.items()]
    items: list[CatalogItem] = []
    item_leaf = np.empty(n_items, dtype=np.int64)
    # item_words[f][i]: the index of item i's word in facet f.
    item_words = {f: np.empty(n_items, dtype=np.int64) for f in FACETS}
    for i in range(n_items):
        leaf = int(rng.integers(len(leaves)))
        top, mid, nouns = leaves[leaf]
        noun = nouns[int(rng.integers(len(nouns)))]
        words = []
        for f in TITLE_ORDER:
            w = int(rng.integers(len(FACETS[f])))
            item_words[f][i] = w
            words.append(FACETS[f][w])
        title = " ".join([*words, noun]).upper()
        price = round(float(PRICE_LEVEL[top] * rng.lognormal(0.0, 0.5)), 2)
        items.append(CatalogItem(f"SKU{i:06d}", title, (top, mid, noun), max(price, 0.5)))
        item_leaf[i] = leaf
    # Some words are liked more by everyone (a trend), which popularity can pick up too.
    trend = {f: rng.lognormal(0.0, 0.3, len(v)) for f, v in FACETS.items()}
    residual = rng.lognormal(0.0, RESIDUAL_APPEAL_SIGMA, n_items)
    by_leaf = [np.flatnonzero(item_leaf == j) for j in range(len(leaves))]
    interactions: list[Interaction] = []
    for u in range(n_users):
        user = f"user-{u:05d}"
        taste = rng.dirichlet(np.full(len(leaves), 0.15))
        price_fit = float(rng.lognormal(0.0, 0.3))
        # The shopper's liking of each item, from the words in its title.
        liking = residual.copy()
        for f, values in FACETS.items():
            preference = rng.dirichlet(np.full(len(values), TASTE_CONCENTRATION))
            preference = (1 - TASTE_FLOOR) * preference + TASTE_FLOOR / len(values)
            liking *= (len(values) * preference * trend[f])[item_words[f]]
        n_sessions = max(1, int(rng.poisson(sessions_per_user)))
        times = np.sort(rng.uniform(0, days * 86400, n_sessions))
        for t in times:
            leaf = int(rng.choice(len(leaves), p=taste))
            pool = by_leaf[leaf]
            if pool.size == 0:
                continue
            prices = np.array([items[i].price for i in pool])
            fit = np.exp(-np.abs(np.log(prices / (PRICE_LEVEL[leaves[leaf][0]] * price_fit))))
            w = liking[pool] * fit
            for step, idx in enumerate(
                rng.choice(pool, size=min(3, pool.size), replace=False, p=w / w.sum())
            ):
                when = start + timedelta(seconds=float(t) + 60 * step)
                item = items[int(idx)].item_id
                interactions.append(Interaction(user, item, when, EVENT_VIEW))
                roll = rng.random()
                if roll < 0.35:
                    interactions.append(
                        Interaction(user, item, when + timedelta(seconds=20), EVENT_ADD_TO_CART)
                    )
                if roll < 0.2:
                    qty = 1 + int(rng.poisson(0.3))
                    interactions.append(
                        Interaction(user, item, when + timedelta(seconds=40), EVENT_PURCHASE, qty)
                    )
    return Dataset(
        name="synthetic",
        items={it.item_id: it for it in items},
        interactions=interactions,
        notes={"seed": str(seed), "n_items": str(n_items), "n_users": str(n_users)},
    )
