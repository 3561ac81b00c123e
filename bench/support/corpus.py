"""Sample shop text for the benchmarks' knowledge documents and queries."""

SENTENCES = [
    "Orders placed before 2 pm leave the warehouse the same day.",
    "Standard delivery takes 2 to 4 working days within Germany.",
    "Returns are free within 30 days of delivery for unworn items.",
    "Refunds go back to the original payment method within 5 working days.",
    "We accept credit cards, PayPal, Apple Pay and Klarna instalments.",
    "Jeans are cut slim, so order one size up for a looser fit.",
    "The Berlin store opens Monday to Saturday from 10 am to 8 pm.",
    "Every product carries a two-year warranty against manufacturing defects.",
    "Loyalty members earn one point for every euro spent.",
    "Our team answers messages on Instagram within one working day.",
    "The organic cotton shirt is pre-washed and keeps its shape after many washes.",
    "Gift cards never expire and can be combined with any payment method.",
]
