'use client';

import { useMutation } from '@tanstack/react-query';
import { useSession } from 'next-auth/react';
import { useState } from 'react';
import { useTRPC } from '@/lib/trpc-react';

export function LikeButton(props: { namespace: string; name: string; likes: number }) {
  const trpc = useTRPC();
  const { data: session } = useSession();
  const [likes, setLikes] = useState(props.likes);
  const like = useMutation(trpc.adapters.like.mutationOptions({ onSuccess: (result) => setLikes(result.likes) }));
  if (!session) return <span>{likes} likes</span>;
  return (
    <>
      <button className="secondary" disabled={like.isPending} onClick={() => like.mutate({ namespace: props.namespace, name: props.name, liked: true })}>Like ({likes})</button>
      {like.error && <span className="error"> {like.error.message}</span>}
    </>
  );
}
