"""Re-embed knowledge documents with the configured embedder and vector store."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from knowledge import ingestion
from knowledge.embeddings import get_embedder
from knowledge.errors import KnowledgeError, LeaseLost
from knowledge.models import Document
from knowledge.stores import build_store, get_store


class Command(BaseCommand):
    help = (
        "Re-chunk and re-embed knowledge documents with the configured embedder, into the configured "
        "store. Run it after changing EMBEDDINGS_PROVIDER, EMBEDDINGS_MODEL, EMBEDDINGS_DIM or VECTOR_STORE: "
        "until then, search and ingestion refuse to mix embedders or stores. A document moved to another "
        "store has its vectors deleted from the previous one. Documents are rebuilt one after the other "
        "in this process; each keeps answering from its previous chunks until its new ones are stored. "
        "A document that fails is marked failed with the reason, and the command exits non-zero."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--user", type=int, metavar="ID", help="Only this user's documents.")
        parser.add_argument(
            "--stale-only",
            action="store_true",
            help="Skip documents that are ready and already built with the configured embedder.",
        )

    def handle(self, *args, user: int | None = None, stale_only: bool = False, **options) -> None:
        verbosity = options["verbosity"]
        try:
            embedder = get_embedder()
            store = get_store()
        except KnowledgeError as exc:
            raise CommandError(exc.message) from None
        documents = Document.objects.order_by("user_id", "pk")
        if user is not None:
            if not User.objects.filter(pk=user).exists():
                raise CommandError(f"There is no user {user}.")
            documents = documents.filter(user_id=user)
        if stale_only:
            # Blank: indexed before stores were recorded, taken as the configured one (as search does).
            documents = documents.exclude(
                status=Document.Status.READY,
                embedder=embedder.name,
                embedding_dim=embedder.dim,
                vector_store__in=[store.name, ""],
            )
        rows = list(documents.values_list("pk", "user_id", "title", "vector_store"))
        try:
            store.prepare(embedder.dim)
        except KnowledgeError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Rebuilding {len(rows)} document(s) with {embedder} into {store.name}.")

        failed = chunks = done = 0
        for number, (document_id, user_id, title, built_in) in enumerate(rows, start=1):
            label = f"[{number}/{len(rows)}] document {document_id} of user {user_id} ({title[:60]})"
            claim = ingestion.force_claim(document_id)
            if claim is None:
                self.stdout.write(f"{label}: deleted meanwhile, skipped")
                continue
            generation, lease = claim

            def progress(embedded: int, total: int, label: str = label) -> None:
                if verbosity >= 2 or (verbosity >= 1 and embedded < total):
                    self.stdout.write(f"{label}: {embedded}/{total} chunks embedded")

            try:
                count = ingestion.index(document_id, generation, lease, check=False, progress=progress)
            except LeaseLost:
                self.stdout.write(f"{label}: changed meanwhile; its new version is queued for indexing")
                continue
            except KnowledgeError as exc:
                ingestion.fail(document_id, lease, exc.message)
                failed += 1
                self.stderr.write(f"{label}: failed: {exc.message}")
                continue
            except Exception as exc:
                ingestion.fail(document_id, lease, f"Rebuild failed ({type(exc).__name__}).")
                raise
            done += 1
            chunks += count
            self.stdout.write(f"{label}: {count} chunks")
            if built_in and built_in != store.name:
                self.remove_from(built_in, user_id, document_id, label)

        self.stdout.write(f"Rebuilt {done} document(s), {chunks} chunks, with {embedder}; {failed} failed.")
        if failed:
            raise CommandError(f"{failed} document(s) failed; fix the cause and run again with --stale-only.")

    def remove_from(self, old_store: str, user_id: int, document_id: int, label: str) -> None:
        """The document's vectors in the store it moved out of: nothing else would ever delete them."""
        try:
            build_store(old_store).delete_document(user_id, document_id)
        except KnowledgeError as exc:
            self.stderr.write(f"{label}: its old vectors in {old_store} were not deleted: {exc.message}")
